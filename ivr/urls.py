from django.urls import path

from ivr import views

app_name = "ivr"

urlpatterns = [
    path("voice", views.voice, name="voice"),
    path("deposit", views.deposit, name="deposit"),
    path("deposit/paid", views.deposit_paid, name="deposit_paid"),
    path("deposit/fallback", views.deposit_fallback, name="deposit_fallback"),
    path("deposit/pay-progress", views.deposit_pay_progress, name="deposit_pay_progress"),
    path("step/<slug:step_name>", views.step, name="step"),
    path("staff-call", views.staff_call, name="staff_call"),
    path("status", views.status, name="status"),
    path("fallback", views.fallback, name="fallback"),
]
