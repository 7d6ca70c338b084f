from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from .roles import roles_sync_after_migrate

        post_migrate.connect(roles_sync_after_migrate, sender=self, dispatch_uid="accounts.roles_sync")
