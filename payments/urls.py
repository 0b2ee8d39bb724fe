from django.urls import path

from payments import views

app_name = "payments"

urlpatterns = [
    path("events", views.stripe_events, name="stripe_events"),
]
