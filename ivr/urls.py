from django.urls import path

from ivr import views

app_name = "ivr"

urlpatterns = [
    path("voice", views.voice, name="voice"),
    path("step/<slug:step_name>", views.step, name="step"),
    path("staff-call", views.staff_call, name="staff_call"),
    path("status", views.status, name="status"),
    path("fallback", views.fallback, name="fallback"),
]
