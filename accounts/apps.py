from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and money"

    def ready(self) -> None:
        # The accounts' panel on the operators' dashboard (the project's admin knows no app).
        from accounts import dashboard
        from myibot import dashboard as panels

        panels.register("admin/accounts/dashboard.html", dashboard.build)
