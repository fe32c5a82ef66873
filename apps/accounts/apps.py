from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Machine clients (clinicians' apps, services) that call the API with scoped bearer tokens."""

    name = "apps.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.models import Group
        from django.db.models.signals import post_migrate, pre_delete, pre_save

        from apps.accounts import schema  # noqa: F401 - registers the OpenAPI security scheme
        from apps.accounts.roles import refuse_deleting_a_role_group, refuse_renaming_a_role_group, roles_ensure

        post_migrate.connect(roles_ensure, dispatch_uid="accounts-roles")
        pre_delete.connect(refuse_deleting_a_role_group, sender=Group, dispatch_uid="accounts-role-groups-kept")
        pre_save.connect(refuse_renaming_a_role_group, sender=Group, dispatch_uid="accounts-role-groups-named")
