from django.apps import AppConfig


class IvrConfig(AppConfig):
    name = "ivr"
    verbose_name = "Calls"

    def ready(self) -> None:
        # Registers every step with the state machine.
        from ivr import steps  # noqa: F401
