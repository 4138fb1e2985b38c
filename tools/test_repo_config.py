"""The Renovate configuration and the bump workflow parse, find the pin, and call what exists."""

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


if __name__ == "__main__":
    unittest.main()
