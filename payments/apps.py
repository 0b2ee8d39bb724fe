from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Card deposits"

    def ready(self) -> None:
        # The card deposits' panel on the operators' dashboard (the project's admin knows no app).
        from myibot import dashboard as panels
        from payments import dashboard

        panels.register("admin/payments/dashboard.html", dashboard.build)
