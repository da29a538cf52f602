from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_redisjobs", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="JobConsole",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
            ],
            options={
                "verbose_name": "job",
                "verbose_name_plural": "jobs",
                "default_permissions": ("view", "change", "delete"),
                "managed": False,
            },
        ),
    ]
