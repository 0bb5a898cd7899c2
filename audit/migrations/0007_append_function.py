from django.db import migrations


def install(apps, schema_editor):
    from audit import appender

    appender.install(schema_editor.connection)


def remove(apps, schema_editor):
    from audit import appender

    appender.remove(schema_editor.connection)


class Migration(migrations.Migration):
    """The one-statement audit append of PostgreSQL (audit.appender); nothing on SQLite."""

    dependencies = [("audit", "0006_append_path_triggers")]
    operations = [migrations.RunPython(install, remove)]
