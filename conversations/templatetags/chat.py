from django import template
from django.utils.safestring import SafeString

from conversations.markdown import render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Markdown rendered, highlighted and cleaned by bleach's allowlist."""
    return render_markdown(text or "")
