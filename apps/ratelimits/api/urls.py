from django.urls import path

from apps.ratelimits.api.views import RateLimitOverviewView

urlpatterns = [path("ratelimits/", RateLimitOverviewView.as_view(), name="ratelimit-overview")]
