from django.apps import AppConfig


class PhoneConfig(AppConfig):
    """The simulator's app: no models, no URLs; it is here for its `call` command."""

    name = "phone"
    verbose_name = "Phone simulator"
