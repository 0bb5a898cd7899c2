from django.db import migrations


def reinstall(apps, schema_editor):
    """Replace the append-only triggers of 0005 with the current set (head steps, Merkle nodes, REPLACE)."""
    from audit import triggers

    triggers.remove(schema_editor.connection)
    triggers.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_append_only_triggers")]
    # Reversed, the current set stays; reversing 0005 removes it.
    operations = [migrations.RunPython(reinstall, migrations.RunPython.noop)]
