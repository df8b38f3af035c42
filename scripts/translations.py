"""Keep the catalogs in step with the code: extract, update, report what is untranslated.

Usage: python scripts/translations.py [--fill-initial]
"""
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "library" / "locale"
POT = LOCALE / "messages.pot"


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], check=True, cwd=ROOT)


def main() -> int:
    run("extract", "-F", "babel.cfg", "-o", str(POT), "--no-location", "--sort-output",
        "--project", "library", "--version", "0.1.0", "-k", "N_", ".")
    for language in ("zh_CN", "en"):
        po = LOCALE / language / "LC_MESSAGES" / "messages.po"
        if po.exists():
            run("update", "-i", str(POT), "-o", str(po), "-l", language, "--no-fuzzy-matching")
        else:
            run("init", "-i", str(POT), "-o", str(po), "-l", language)
    if "--fill-initial" in sys.argv:
        sys.path.insert(0, str(ROOT / "scripts"))
        from zh_CN_initial import ZH

        po = LOCALE / "zh_CN" / "LC_MESSAGES" / "messages.po"
        catalog = read_po(po.open("rb"), locale="zh_CN")
        for message in catalog:
            empty = not any(message.string) if isinstance(message.string, tuple) else not message.string
            if message.id and empty:
                message.string = ZH.get(message.id, message.string)
        with po.open("wb") as handle:
            write_po(handle, catalog, width=0)
    catalog = read_po((LOCALE / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb"), locale="zh_CN")
    missing = [m.id for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    for message_id in missing:
        print("untranslated:", message_id)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
