from django.urls import path

from apps.caching.api.views import CacheOverviewView

urlpatterns = [path("cache/namespaces/", CacheOverviewView.as_view(), name="cache-overview")]
