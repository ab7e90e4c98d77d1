from django.urls import path

from conversations import views

app_name = "conversations"
urlpatterns = [
    path("", views.conversation_index, name="index"),
    path("new/", views.conversation_new, name="new"),
    path("new/messages/", views.message_create, name="start"),
    path("c/<uuid:public_id>/", views.conversation_detail, name="detail"),
    path("c/<uuid:public_id>/messages/", views.message_create, name="message_create"),
    path("c/<uuid:public_id>/system-prompt/", views.conversation_system_prompt, name="system_prompt"),
    path("c/<uuid:public_id>/lookups/", views.conversation_lookups, name="lookups"),
    path("c/<uuid:public_id>/replies/<int:pk>/stream/", views.reply_stream, name="reply_stream"),
    path("c/<uuid:public_id>/replies/<int:pk>/stop/", views.reply_stop, name="reply_stop"),
    path("c/<uuid:public_id>/replies/<int:pk>/retry/", views.reply_retry, name="reply_retry"),
    # Versions: a reply regenerated, a question edited and sent again, another version shown.
    path("c/<uuid:public_id>/replies/<int:pk>/regenerate/", views.reply_regenerate, name="reply_regenerate"),
    path("c/<uuid:public_id>/messages/<int:pk>/edit/", views.message_edit, name="message_edit"),
    path("c/<uuid:public_id>/messages/<int:pk>/show/", views.message_show, name="message_show"),
    # The sidebar: its list (pages, search), rename (in a row or in the chat's header), delete,
    # and the marker of a reply being written.
    path("conversations/", views.conversation_list, name="list"),
    path("c/<uuid:public_id>/rename/", views.conversation_rename, name="rename"),
    path("c/<uuid:public_id>/rename/title/", views.conversation_rename, {"place": "header"}, name="rename_title"),
    path("c/<uuid:public_id>/delete/", views.conversation_delete, name="delete"),
    path("c/<uuid:public_id>/status/", views.conversation_status, name="status"),
    path("c/<uuid:public_id>/title/", views.conversation_title_watch, name="title_watch"),
    # Pin and archive: the changes (POST), and the Archived page.
    path("c/<uuid:public_id>/pin/", views.conversation_pin, name="pin"),
    path("c/<uuid:public_id>/archive/", views.conversation_archive, name="archive"),
    path("archived/", views.conversation_archived, name="archived"),
    # Export: a conversation's active branch as Markdown or JSON; all of the user's as JSON.
    path("c/<uuid:public_id>/export.md", views.conversation_export, {"kind": "markdown"}, name="export_markdown"),
    path("c/<uuid:public_id>/export.json", views.conversation_export, {"kind": "json"}, name="export_json"),
    path("export/conversations.json", views.account_export, name="export_all"),
    # Share links: the owner's list (create in it), revoke; the public page of one, open without login.
    path("c/<uuid:public_id>/shares/", views.share_list, name="shares"),
    path("c/<uuid:public_id>/shares/<int:pk>/revoke/", views.share_revoke, name="share_revoke"),
    path("s/<slug:token>/", views.share_detail, name="share"),
]
