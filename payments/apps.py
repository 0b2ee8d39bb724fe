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

    def load_before_the_fork(self) -> None:
        """Called by myibot/wsgi.py in gunicorn's master: what a charge loads, shared by the workers."""
        from payments import stripe_api

        stripe_api.load_before_the_fork()
