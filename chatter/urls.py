from django.contrib import admin
from django.urls import include, path

from accounts.urls import auth_urlpatterns

urlpatterns = [
    path("", include("conversations.urls")),
    path("accounts/", include(auth_urlpatterns)),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "chatter.views.bad_request"
handler403 = "chatter.views.permission_denied"
handler404 = "chatter.views.page_not_found"
handler500 = "chatter.views.server_error"
