"""The Renovate configuration and the workflows parse, find the pin, and call what exists; README's example
is the compiled snippet, its links resolve, and every DocC article is linked from its landing page."""

import glob
import json
import os
import re
import subprocess
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_target_exists(command):
    """Whether `make TARGET ...` names a target the Makefile has (make -n plans it without running)."""
    words = command.split()
    assert words[0] == "make", command
    words = [w for w in words[1:] if not w.startswith("-")]
    target = words[0]
    variables = [w.replace("{{{newVersion}}}", "b1") for w in words[1:] if "=" in w]
    result = subprocess.run(["make", "-n", target, *variables], cwd=ROOT, capture_output=True, text=True)
    return result.returncode == 0 and "No rule to make target" not in result.stderr


class RenovateTests(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(ROOT, "renovate.json")) as f:
            self.config = json.load(f)

    def test_the_regex_manager_finds_the_pinned_tag(self):
        manager = self.config["customManagers"][0]
        self.assertEqual(manager["customType"], "regex")
        self.assertEqual(manager["datasourceTemplate"], "github-releases")
        self.assertEqual(manager["depNameTemplate"], "ggml-org/llama.cpp")
        pattern = manager["managerFilePatterns"][0].strip("/")
        self.assertTrue(re.search(pattern, "headers/manifest.json"))
        with open(os.path.join(ROOT, "headers", "manifest.json")) as f:
            text = f.read()
        tag = json.loads(text)["tag"]
        # Renovate's named groups are written (?<name>...); Python spells them (?P<name>...).
        python_regex = manager["matchStrings"][0].replace("(?<", "(?P<")
        matches = [m.group("currentValue") for m in re.finditer(python_regex, text)]
        self.assertEqual(matches, [tag])
        versioning = manager["versioningTemplate"].split(":", 1)[1].replace("(?<", "(?P<")
        self.assertTrue(re.match(versioning, tag))

    def test_post_upgrade_tasks_call_existing_targets(self):
        rule = next(r for r in self.config["packageRules"] if "ggml-org/llama.cpp" in r.get("matchDepNames", []))
        tasks = rule["postUpgradeTasks"]
        self.assertTrue(tasks["commands"])
        for command in tasks["commands"]:
            self.assertTrue(make_target_exists(command), command)
        for pattern in tasks["fileFilters"]:
            folder = pattern.split("*")[0].rstrip("/")
            self.assertTrue(os.path.exists(os.path.join(ROOT, folder)), pattern)


class WorkflowTests(unittest.TestCase):
    def test_the_bump_workflow_runs_existing_commands(self):
        with open(os.path.join(ROOT, ".github", "workflows", "llama-bump.yml")) as f:
            workflow = yaml.safe_load(f)
        triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads a bare `on` as true
        self.assertIn("headers/manifest.json", triggers["pull_request"]["paths"])
        steps = workflow["jobs"]["bump"]["steps"]
        commands = [line.strip() for s in steps if "run" in s for line in s["run"].splitlines() if line.strip()]
        make_commands = [c.split(">")[0].strip() for c in commands if c.startswith("make ")]
        self.assertGreaterEqual(len(make_commands), 2)
        for command in make_commands:
            self.assertTrue(make_target_exists(command), command)
        # Scripts of the repository a step runs (CI's own entry point among them) exist and are executable.
        scripts = [word for c in commands for word in c.split() if word.startswith(("tools/", ".ci/"))]
        self.assertIn(".ci/run", scripts)
        for script in scripts:
            path = os.path.join(ROOT, script)
            self.assertTrue(os.path.isfile(path) and os.access(path, os.X_OK), script)
        self.assertTrue(any("createComment" in s.get("with", {}).get("script", "") for s in steps))

    def test_the_ci_workflow_runs_make_test_on_linux_and_api_tests_on_macos(self):
        with open(os.path.join(ROOT, ".github", "workflows", "ci.yml")) as f:
            workflow = yaml.safe_load(f)
        triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads a bare `on` as true
        self.assertIn("pull_request", triggers)
        jobs = workflow["jobs"]

        # Linux: x64 and arm64 runners, each running CI's entry point (.ci/run, which is `make test`).
        linux = jobs["linux"]
        runners = {entry["arch"]: entry["runner"] for entry in linux["strategy"]["matrix"]["include"]}
        self.assertEqual(set(runners), {"x64", "arm64"})
        self.assertTrue(runners["arm64"].endswith("-arm"), runners)
        self.assertEqual(linux["runs-on"], "${{ matrix.runner }}")
        with open(os.path.join(ROOT, ".ci", "run")) as f:
            self.assertIn("exec make test", f.read())
        # make test builds the documentation (warnings as errors, snippets compiled) and checks coverage.
        plan = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertIn("generate-documentation", plan.stdout)
        self.assertIn("--warnings-as-errors", plan.stdout)
        self.assertIn("tools/doc_coverage.py", plan.stdout)
        self.assertIn("Snippets/", plan.stdout)

        # macOS: the package build, the Metal release, and API tests.
        macos = jobs["macos"]
        self.assertTrue(macos["runs-on"].startswith("macos"), macos["runs-on"])
        macos_commands = [line.strip() for s in macos["steps"] if "run" in s for line in s["run"].splitlines()]
        self.assertIn("swift build", macos_commands)
        self.assertTrue(any("--variant metal" in c for c in macos_commands), macos_commands)
        self.assertTrue(any(c.startswith("swift test --filter") for c in macos_commands), macos_commands)

        # Every make command names a real target; every repository script exists and is executable.
        commands = [line.strip() for job in jobs.values() for s in job["steps"] if "run" in s
                    for line in s["run"].splitlines() if line.strip()]
        make_commands = [c for c in commands if c.startswith("make ")]
        self.assertTrue(make_commands)
        for command in make_commands:
            self.assertTrue(make_target_exists(command), command)
        words = [word.lstrip("$(").split(")")[0] for c in commands for word in c.split()]
        scripts = [w for w in words if w.startswith(("tools/", ".ci/", ".build/debug/"))]
        self.assertIn(".ci/run", scripts)
        executed = {c.split()[0] for c in commands} | {c.split()[-1] for c in commands if c.startswith("sudo ")}
        with open(os.path.join(ROOT, "Package.swift")) as f:
            manifest = f.read()
        for script in scripts:
            if script.startswith(".build/debug/"):
                self.assertIn(f'.executable(name: "{script.split("/")[-1]}"', manifest, script)
                continue
            path = os.path.join(ROOT, script)
            self.assertTrue(os.path.isfile(path), script)
            if script in executed:
                self.assertTrue(os.access(path, os.X_OK), f"{script} is run directly but is not executable")

        # The llama.cpp builds and the model are cached by what decides them, not by a path or a date.
        caches = [s for job in jobs.values() for s in job["steps"] if s.get("uses", "").startswith("actions/cache@")]
        self.assertTrue(any(c["with"]["path"] == "~/.cache/swift-llama-cpp" for c in caches))
        for cache in caches:
            self.assertIn("hashFiles(", cache["with"]["key"])


class DocumentationTests(unittest.TestCase):
    def test_readme_example_is_the_compiled_snippet(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        match = re.search(r"```swift\n(.*?)```", readme, re.S)
        self.assertIsNotNone(match, "README.md has no Swift example")
        example = match.group(1).rstrip("\n").splitlines()
        with open(os.path.join(ROOT, "Snippets", "QuickStart.swift")) as f:
            snippet = f.read().rstrip("\n").splitlines()
        # The snippet's own first comment (what it is) is not part of the example.
        while snippet and snippet[0].startswith("//"):
            snippet.pop(0)
        self.assertEqual(example, snippet, "README's example differs from Snippets/QuickStart.swift: copy it over")
        self.assertLessEqual(len(example), 15)

    def test_readme_links_resolve(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
        local = [link for link in links if not link.startswith(("http://", "https://", "../../actions/"))]
        self.assertGreaterEqual(len(local), 10)
        for link in local:
            self.assertTrue(os.path.exists(os.path.join(ROOT, link)), link)

    def test_articles_are_linked_from_their_landing_page(self):
        for catalog in sorted(glob.glob(os.path.join(ROOT, "Sources", "*", "*.docc"))):
            module = os.path.basename(catalog)[: -len(".docc")]
            landing = os.path.join(catalog, module + ".md")
            self.assertTrue(os.path.isfile(landing), f"{catalog} has no landing page {module}.md")
            with open(landing) as f:
                text = f.read()
            self.assertTrue(text.startswith(f"# ``{module}``"), landing)
            for article in glob.glob(os.path.join(catalog, "*.md")):
                name = os.path.basename(article)[:-3]
                if name != module:
                    self.assertIn(f"<doc:{name}>", text, f"{landing} does not link the article {name}")

    def test_snippets_shown_in_articles_exist(self):
        for article in glob.glob(os.path.join(ROOT, "Sources", "*", "*.docc", "*.md")):
            with open(article) as f:
                for path in re.findall(r'@Snippet\(path: "([^"]+)"', f.read()):
                    package, folder, name = path.split("/")
                    self.assertEqual((package, folder), ("swift-llama-cpp", "Snippets"), article)
                    self.assertTrue(os.path.isfile(os.path.join(ROOT, "Snippets", name + ".swift")), f"{article}: {path}")


if __name__ == "__main__":
    unittest.main()
