"""The README's commands are the ones CI runs."""
import re

from conftest import REPO


def readme_command(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", text, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command():
    ci_lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert readme_command("test-command") in ci_lines


def test_ci_installs_like_the_readme_run_command():
    """The same editable install; CI adds the optional extras (e.g. birdnet) to test them."""
    def extras(text):
        match = re.search(r'pip install (?:-q )?-e "\.\[([\w,]+)\]"', text)
        assert match, text
        return set(match[1].split(","))

    assert extras(readme_command("run-command")) <= extras((REPO / ".ci/run").read_text())


def test_every_config_key_is_documented():
    import yaml

    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    readme = (REPO / "docs/configuration.md").read_text()

    def keys(node, prefix=""):
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            if sub.get("type") == "object":
                yield from keys(sub, path + ".")
            else:
                yield path, name

    missing = [path for path, name in keys(schema) if path not in readme and f".{name}" not in readme]
    assert not missing, f"config keys missing from docs/configuration.md: {missing}"


def test_links_between_the_readme_and_the_docs_lead_somewhere():
    """Every relative link of README.md and docs/*.md names a file that exists and, with
    #anchor, one of its headings (GitHub's anchors: lower case, spaces to '-')."""
    def anchors(path):
        return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", path.read_text(), re.M)}

    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"\w+://", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists() or (anchor and anchor not in anchors(path)):
                broken.append(f"{page.name}: {target}")
    assert not broken, broken
