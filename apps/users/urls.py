from django.urls import path

from apps.users.apis import LogoutApi, SignInListApi, TokenObtainApi, TokenRefreshApi

urlpatterns = [
    path("token/", TokenObtainApi.as_view(), name="token_obtain_pair"),
    path("token/refresh/", TokenRefreshApi.as_view(), name="token_refresh"),
    path("logout/", LogoutApi.as_view(), name="logout"),
    path("sign-ins/", SignInListApi.as_view(), name="sign_ins"),
]
