#!/usr/bin/env python3
"""Checks compose.yaml without an engine (scripts/check-containers.sh runs it for real with
podman): YAML syntax, known top-level (and x- extension) and service keys, an image or build
for every service, build contexts and Containerfiles that exist, healthchecks in the exec form, depends_on and
named volumes that exist, bind-mounted files that exist in the repository, and port
mappings bound to loopback. Exits non-zero with one line per problem."""
import os, re, sys

import yaml

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
path = os.path.join(root, sys.argv[1] if len(sys.argv) > 1 else "compose.yaml")
problems = []
with open(path) as f:
    compose = yaml.safe_load(f)

allowed_top = {"name", "services", "volumes", "networks", "configs", "secrets"}
allowed_service = {
    "build", "image", "entrypoint", "command", "environment", "volumes", "ports", "healthcheck", "depends_on",
    "stop_grace_period", "restart", "user", "networks",
}
for key in compose:
    if key not in allowed_top and not key.startswith("x-"):
        problems.append(f"unknown top-level key {key!r}")
services = compose.get("services") or {}
volumes = set((compose.get("volumes") or {}).keys())
if not services:
    problems.append("no services")
for name, service in services.items():
    where = f"service {name!r}"
    for key in service:
        if key not in allowed_service:
            problems.append(f"{where}: unknown key {key!r}")
    if "image" not in service and "build" not in service:
        problems.append(f"{where}: needs image or build")
    build = service.get("build")
    if isinstance(build, dict):
        context = os.path.join(root, build.get("context", "."))
        if not os.path.isfile(os.path.join(context, build.get("dockerfile", "Dockerfile"))):
            problems.append(f"{where}: build {build!r} names no file in the repository")
    check = service.get("healthcheck")
    if not check or not isinstance(check.get("test"), list) or check["test"][0] not in ("CMD", "CMD-SHELL"):
        problems.append(f"{where}: needs a healthcheck with test: [CMD, …] or [CMD-SHELL, …]")
    for other, condition in (service.get("depends_on") or {}).items():
        if other not in services:
            problems.append(f"{where}: depends on unknown service {other!r}")
        if condition.get("condition") not in ("service_started", "service_healthy", "service_completed_successfully"):
            problems.append(f"{where}: depends_on {other!r} has no valid condition")
    for mount in service.get("volumes") or []:
        source = mount.split(":")[0]
        if source.startswith("."):
            if not os.path.exists(os.path.join(root, source)):
                problems.append(f"{where}: bind mount {source!r} does not exist")
        elif source not in volumes:
            problems.append(f"{where}: named volume {source!r} is not declared under volumes")
    for port in service.get("ports") or []:
        if not re.fullmatch(r"127\.0\.0\.1:\d+:\d+", str(port)):
            problems.append(f"{where}: port {port!r} should be bound to 127.0.0.1:HOST:CONTAINER")
    for entry in service.get("entrypoint") or []:
        if entry.startswith("/usr/local/bin/") and not os.path.exists(os.path.join(root, "docker", os.path.basename(entry))):
            problems.append(f"{where}: entrypoint {entry!r} is not one of docker/*.sh")
hubs = [name for name, service in services.items() if "/usr/local/bin/hub-entrypoint.sh" in (service.get("entrypoint") or [])]
if not any(services[name].get("build") == "." for name in hubs):
    problems.append("a hub service should build the repository's Dockerfile (build: .)")

for problem in problems:
    print(f"{path}: {problem}")
if problems:
    sys.exit(1)
print(f"{path}: {len(services)} services, {len(volumes)} volumes: ok")
