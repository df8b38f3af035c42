import pytest

from library.settings import SETTING_NAMES, PROJECT_ROOT, SettingsError, load_settings


def test_defaults_work_on_a_laptop(tmp_path):
    settings = load_settings({"LIBRARY_DATA_DIR": str(tmp_path)})
    assert settings.engine == "sqlite"
    assert settings.sqlite_path == tmp_path / "library.sqlite3"
    assert (settings.host, settings.port, settings.default_language, settings.node_role) == (
        "127.0.0.1", 8000, "zh_CN", "branch")
    assert settings.time_zone == "Asia/Shanghai"


def test_the_generated_secret_key_is_kept(tmp_path):
    first = load_settings({"LIBRARY_DATA_DIR": str(tmp_path)}).secret_key
    second = load_settings({"LIBRARY_DATA_DIR": str(tmp_path)}).secret_key
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_postgres_url(tmp_path):
    settings = load_settings({"LIBRARY_DATA_DIR": str(tmp_path),
                              "LIBRARY_DATABASE_URL": "postgresql://u:p@db.example:5432/library"})
    assert settings.engine == "postgres"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIBRARY_DATABASE_URL", "mysql://x/y"),
        ("LIBRARY_DATABASE_URL", "sqlite:///"),
        ("LIBRARY_DATABASE_URL", "postgresql://localhost"),
        ("LIBRARY_DATABASE_URL", "postgresql://localhost:notaport/db"),
        ("LIBRARY_PORT", "eighty"),
        ("LIBRARY_PORT", "70000"),
        ("LIBRARY_DEFAULT_LANGUAGE", "fr"),
        ("LIBRARY_NODE_ROLE", "satellite"),
        ("LIBRARY_TIME_ZONE", "Mars/Olympus"),
        ("LIBRARY_SECRET_KEY", "short"),
        ("LIBRARY_SECURE_COOKIES", "perhaps"),
        ("LIBRARY_MAX_BODY_BYTES", "10"),
        ("LIBRARY_SIGNIN_FAILURES_PER_MINUTE", "0"),
        ("LIBRARY_SMTP_PORT", "smtp"),
        ("LIBRARY_SMTP_STARTTLS", "maybe"),
        ("LIBRARY_SMTP_USER", "library"),  # without a password
        ("LIBRARY_MAIL_FROM", "the library"),
        ("LIBRARY_DUE_SOON_DAYS", "-1"),
        ("LIBRARY_NOTICE_INTERVAL_SECONDS", "soon"),
        ("LIBRARY_LOAN_HISTORY_DAYS", "thirty"),
    ],
)
def test_a_malformed_setting_is_named(tmp_path, name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({"LIBRARY_DATA_DIR": str(tmp_path), name: value})


def test_notices_default_to_waiting_in_the_outbox(tmp_path):
    settings = load_settings({"LIBRARY_DATA_DIR": str(tmp_path)})
    assert settings.smtp_host is None and settings.smtp_port == 25 and not settings.smtp_starttls
    assert settings.mail_from == "Jiaxing Library <library@localhost>"
    assert (settings.due_soon_days, settings.notice_interval_seconds, settings.loan_history_days) == (3, 60, 30)
    chosen = load_settings({"LIBRARY_DATA_DIR": str(tmp_path), "LIBRARY_SMTP_HOST": "mail.example.org",
                            "LIBRARY_SMTP_PORT": "587", "LIBRARY_SMTP_STARTTLS": "true",
                            "LIBRARY_SMTP_USER": "library", "LIBRARY_SMTP_PASSWORD": "secret",
                            "LIBRARY_MAIL_FROM": "嘉兴市图书馆 <library@jxlib.example>", "LIBRARY_LOAN_HISTORY_DAYS": "0"})
    assert (chosen.smtp_host, chosen.smtp_port, chosen.smtp_starttls, chosen.smtp_user) == (
        "mail.example.org", 587, True, "library")
    assert chosen.mail_from == "嘉兴市图书馆 <library@jxlib.example>" and chosen.loan_history_days == 0


def test_smtp_credentials_are_plain_ascii(tmp_path):
    with pytest.raises(SettingsError, match="LIBRARY_SMTP_PASSWORD must be plain ASCII"):
        load_settings({"LIBRARY_DATA_DIR": str(tmp_path), "LIBRARY_SMTP_USER": "library",
                       "LIBRARY_SMTP_PASSWORD": "图书馆密码"})


def test_every_setting_is_documented_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [name for name in SETTING_NAMES if name not in readme]
    assert not missing, f"undocumented settings: {missing}"


def test_every_setting_read_is_listed(tmp_path):
    source = (PROJECT_ROOT / "library" / "settings.py").read_text()
    import re

    read = set(re.findall(r'"(LIBRARY_[A-Z0-9_]+)"', source))  # LIBRARY_SIP2_PORT has a digit
    assert read == set(SETTING_NAMES)


def test_a_relative_data_folder_is_taken_from_where_the_command_starts(tmp_path, monkeypatch):
    """An operator in /srv/library runs `LIBRARY_DATA_DIR=data-zx library serve`: the data goes to
    /srv/library/data-zx, not into the installed package's folder."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"LIBRARY_DATA_DIR": "data-zx"})
    assert settings.data_dir == tmp_path / "data-zx"
    assert settings.sqlite_path == tmp_path / "data-zx" / "library.sqlite3"
    assert (tmp_path / "data-zx" / "secret.key").exists()
    relative_url = load_settings({"LIBRARY_DATA_DIR": str(tmp_path), "LIBRARY_DATABASE_URL": "sqlite:///own.sqlite3"})
    assert relative_url.sqlite_path == tmp_path / "own.sqlite3"
    assert load_settings({}).data_dir == PROJECT_ROOT / "data"  # unset: the project's own, as `make run` uses
