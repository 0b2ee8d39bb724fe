from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Card deposits"

    def ready(self) -> None:
        # The card deposits' panel on the operators' dashboard (the project's admin knows no app).
        from myibot import dashboard as panels
        from payments import dashboard

        panels.register("admin/payments/dashboard.html", dashboard.build)
        # Card money cannot leave by transfer before its hold ends: every transfer and balance asks.
        from accounts import holds as money_holds
        from payments import holds

        money_holds.register(holds.card_money_held)
