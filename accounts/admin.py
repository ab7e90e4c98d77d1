from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User


class StaffAccessMixin:
    """In chatter every staff user is an admin: staff manage what these admin classes
    cover without per-model permissions. Superuser-only powers stay with superusers."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = "email verified"
    parameter_name = "verified"

    def lookups(self, request, model_admin):
        return [("yes", "Verified"), ("no", "Not verified")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(email_verified_at__isnull=self.value() == "no")
        return queryset


@admin.register(User)
class UserAdmin(StaffAccessMixin, DjangoUserAdmin):
    list_display = ("username", "email", "email_verified", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", EmailVerifiedFilter, "date_joined")
    search_fields = ("username", "email", "first_name", "last_name")
    ordering = ("-date_joined",)
    actions = ["mark_email_verified"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email", "pending_email", "email_verified_at")}),
        ("Role", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "usable_password", "password1", "password2")}),
    )

    @admin.display(boolean=True, description="Email verified")
    def email_verified(self, obj: User) -> bool:
        return obj.email_verified

    def get_readonly_fields(self, request, obj=None):
        # Only a superuser can make a superuser or hand out fine-grained permissions.
        # The address a user is switching to changes only through its link.
        if request.user.is_superuser:
            return ("pending_email",)
        return ("pending_email", "is_superuser", "user_permissions", "groups", "last_login", "date_joined")

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # Staff may not edit a superuser (that would let them take over the account).
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    has_delete_permission = has_change_permission

    @admin.action(description="Mark email as verified")
    def mark_email_verified(self, request, queryset):
        count = queryset.filter(email_verified_at__isnull=True).update(email_verified_at=timezone.now())
        self.message_user(request, f"{count} user(s) marked verified.", messages.SUCCESS)


class LockoutAdmin(StaffAccessMixin, AccessAttemptAdmin):
    """Failed logins per username and address; deleting one lifts its lockout. Shows when the
    attempt expires rather than the raw expiration object."""

    list_display = [("expires_at" if name == "expiration" else name) for name in AccessAttemptAdmin.list_display]
    fieldsets = (
        (None, {"fields": ("username", "path_info", "failures_since_start", "expires_at")}),
        *AccessAttemptAdmin.fieldsets[1:],
    )
    readonly_fields = [
        ("expires_at" if name == "expiration" else name) for name in AccessAttemptAdmin.readonly_fields
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Expires at")
    def expires_at(self, obj: AccessAttempt):
        return obj.expiration.expires_at if hasattr(obj, "expiration") else "Not set"


# Lockouts: staff see failed logins and clear a lockout by deleting its access attempt.
for model, model_admin in (
    (AccessAttempt, LockoutAdmin),
    (AccessLog, type("AccessLogAdmin", (StaffAccessMixin, AccessLogAdmin), {"has_add_permission": lambda self, request: False})),
    (AccessFailureLog, type("AccessFailureLogAdmin", (StaffAccessMixin, AccessFailureLogAdmin), {"has_add_permission": lambda self, request: False})),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
