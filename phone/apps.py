from django.apps import AppConfig


class PhoneConfig(AppConfig):
    """The simulator's app: no models, no URLs; its `call` command, and the test processor it registers."""

    name = "phone"
    verbose_name = "Phone simulator"

    def ready(self) -> None:
        # Stripe's test mode, in this process, for DEBUG without STRIPE_SECRET_KEY (phone/processor.py).
        from payments import stripe_api
        from phone.processor import TestProcessor

        stripe_api.register_test_processor(TestProcessor)
