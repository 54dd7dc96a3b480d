from django.urls import path

from apps.users.apis import TokenObtainApi, TokenRefreshApi

urlpatterns = [
    path("token/", TokenObtainApi.as_view(), name="token_obtain_pair"),
    path("token/refresh/", TokenRefreshApi.as_view(), name="token_refresh"),
]
