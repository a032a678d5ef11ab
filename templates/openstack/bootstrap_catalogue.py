"""Keystone's side of the bootstrap, through the VIP: `check` exits 0 when the admin already gets
a token (keystone-manage bootstrap has run with this password); `catalogue` makes the service
project, roles, service users, services and endpoints, and heat's domain.

argv[1]: the mode; argv[2]: JSON {"auth_url", "region", "admin_user", "admin_project", "cafile"
(or null), "users": [name, ...], "services": [[type, name], ...], "endpoints": [[type,
interface, url], ...], "heat": bool}; fd 3: NAME=value lines (keystone_admin, ks_<user>,
ks_heat_domain_admin).

Check-then-create for every object. An existing user's password is set only when it cannot log
in with it: keystone revokes a user's tokens whenever its password is set, even to the same value
(nova-api then fails with the neutron admin token it cached). Prints what it created ("nothing"
on a re-run).
"""
import json
import os
import sys
import time

import openstack
from keystoneauth1 import exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

mode, plan = sys.argv[1], json.loads(sys.argv[2])
with os.fdopen(3) as stream:
    secrets = dict(line.split("=", 1) for line in stream.read().splitlines() if "=" in line)
verify = plan["cafile"] or True


def token(user, password, project=None, domain_id="default"):
    """A token for `user` (project-scoped when `project` is given), or None when refused."""
    auth = v3.Password(auth_url=plan["auth_url"], username=user, password=password,
                       user_domain_id=domain_id, project_name=project,
                       project_domain_id="default" if project else None)
    try:
        return ks_session.Session(auth=auth, verify=verify).get_token()
    except exceptions.Unauthorized:
        return None


def wait_for_keystone():
    """Keystone answers at the VIP once HAProxy has seen this node's keystone: bounded."""
    deadline = time.monotonic() + 300
    while True:
        try:
            ks_session.Session(verify=verify).get(plan["auth_url"], authenticated=False)
            return
        except exceptions.ConnectFailure:
            pass
        except exceptions.HttpError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"keystone does not answer at {plan['auth_url']}")
        time.sleep(2)


wait_for_keystone()
admin_password = secrets["keystone_admin"]
if mode == "check":
    sys.exit(0 if token(plan["admin_user"], admin_password, plan["admin_project"]) else 1)

cloud = openstack.connect(auth_url=plan["auth_url"], username=plan["admin_user"],
                          password=admin_password, project_name=plan["admin_project"],
                          user_domain_id="default", project_domain_id="default",
                          region_name=plan["region"], interface="internal", cacert=plan["cafile"],
                          identity_api_version="3")
identity = cloud.identity
done = []


def ensure(kind, find, create):
    found = find()
    if found is None:
        found = create()
        done.append(kind)
    return found


def ensure_user(name, password, domain):
    user = identity.find_user(name, domain_id=domain.id)
    if user is None:
        done.append(f"user {name}")
        return identity.create_user(name=name, password=password, domain_id=domain.id)
    if token(name, password, domain_id=domain.id) is None:
        identity.update_user(user, password=password)
        done.append(f"password {name}")
    return user


def ensure_grant(role, user, project=None, domain=None):
    scope = {"scope_project_id": project.id} if project else {"scope_domain_id": domain.id}
    if not list(identity.role_assignments(user_id=user.id, role_id=role.id, **scope)):
        if project:
            identity.assign_project_role_to_user(project, user, role)
        else:
            identity.assign_domain_role_to_user(domain, user, role)
        done.append(f"{role.name} for {user.name}")


default = identity.find_domain("default")
service_project = ensure("project service",
                         lambda: identity.find_project("service", domain_id=default.id),
                         lambda: identity.create_project(name="service", domain_id=default.id))
role_names = ["admin", *(["heat_stack_owner", "heat_stack_user"] if plan["heat"] else [])]
roles = {name: ensure(f"role {name}", lambda name=name: identity.find_role(name),
                      lambda name=name: identity.create_role(name=name)) for name in role_names}
for name in plan["users"]:
    ensure_grant(roles["admin"], ensure_user(name, secrets[f"ks_{name}"], default),
                 project=service_project)

services = {s.type: s for s in identity.services()}
endpoints = list(identity.endpoints())
for kind, name in plan["services"]:
    if kind not in services:
        services[kind] = identity.create_service(name=name, type=kind, description=name)
        done.append(f"service {kind}")
for kind, interface, url in plan["endpoints"]:
    service = services[kind]
    if not any(e.service_id == service.id and e.interface == interface and e.url == url
               and e.region_id == plan["region"] for e in endpoints):
        identity.create_endpoint(service_id=service.id, interface=interface, url=url,
                                 region_id=plan["region"])
        done.append(f"{kind} {interface} endpoint")

if plan["heat"]:
    # Stacks' own projects and users live in the `heat` domain, run by heat_domain_admin.
    heat = ensure("domain heat", lambda: identity.find_domain("heat"),
                  lambda: identity.create_domain(name="heat", description="heat stacks"))
    ensure_grant(roles["admin"], ensure_user("heat_domain_admin",
                                             secrets["ks_heat_domain_admin"], heat), domain=heat)
    admin = identity.find_user(plan["admin_user"], domain_id=default.id)
    ensure_grant(roles["heat_stack_owner"], admin,
                 project=identity.find_project(plan["admin_project"], domain_id=default.id))
print("catalogue: created", ", ".join(done) if done else "nothing")
