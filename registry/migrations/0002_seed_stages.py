from django.db import migrations

STAGES = [
    ("staging", 10, False, "Pre-production: set directly by contributors."),
    ("production", 20, True, "Serving traffic: changes only through an approved promotion."),
]


def seed(apps, schema_editor):
    Stage = apps.get_model("registry", "Stage")
    for name, order, protected, description in STAGES:
        Stage.objects.get_or_create(
            name=name, defaults={"order": order, "protected": protected, "description": description}
        )


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
