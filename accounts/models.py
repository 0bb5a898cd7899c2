"""People and teams. A team is a Django group, so object permissions can be granted to it."""

from django.contrib.auth.models import Group


class Team(Group):
    """A group of people that owns assets."""

    class Meta:
        proxy = True
