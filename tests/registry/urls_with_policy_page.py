"""The product's URLs plus a policy page in the approvals namespace: for the test that the asset page links
to the policy pages when the app has them (and leaves the link out when it does not)."""

from django.http import HttpResponse
from django.urls import include, path

from approvals import urls as approvals_urls
from config import urls as product

policy_page = path("policies/<int:pk>/", lambda request, pk: HttpResponse(f"policy {pk}"), name="policy")
urlpatterns = [
    path("", include(([*approvals_urls.urlpatterns, policy_page], "approvals"))),
    *product.urlpatterns,
]
