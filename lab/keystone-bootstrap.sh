#!/bin/bash
# Stands in for the per-node OpenStack install the seed assumes: keystone on every control node,
# configured as a non-HA install leaves it (its database and its own URLs at the node's own
# address), then, on the node holding MySQL, the database, the shared keys and the catalogue with
# identity, image, compute and network endpoints at that node's address. Idempotent.
#   keystone-bootstrap.sh configure NODE_IP        every control node (stdin: database password)
#   keystone-bootstrap.sh initialise NODE_IP REGION   the MySQL holder (stdin: database and admin
#                                                      passwords, one per line); prints its keys
#   keystone-bootstrap.sh keys                     the other nodes (stdin: the keys, base64 tar)
set -euo pipefail
action=$1
conf=/etc/keystone/keystone.conf

case "$action" in
configure)
  node_ip=$2
  IFS= read -r db_password || [ -n "$db_password" ]
  crudini --set "$conf" database connection "mysql+pymysql://keystone:$db_password@$node_ip/keystone"
  crudini --set "$conf" DEFAULT public_endpoint "http://$node_ip:5000"
  crudini --set "$conf" token provider fernet
  # Lab only: a cheap password hash (bcrypt's default cost takes seconds under emulation).
  crudini --set "$conf" identity password_hash_rounds 4
  ;;
initialise)
  node_ip=$2 region=$3
  IFS= read -r db_password
  IFS= read -r admin_password || [ -n "$admin_password" ]
  mysql <<SQL
CREATE DATABASE IF NOT EXISTS keystone;
CREATE USER IF NOT EXISTS 'keystone'@'%' IDENTIFIED BY '$db_password';
GRANT ALL ON keystone.* TO 'keystone'@'%';
SQL
  su -s /bin/sh -c "keystone-manage db_sync" keystone
  if [ ! -f /etc/keystone/fernet-keys/0 ]; then
    keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
  fi
  url=http://$node_ip:5000/v3/
  OS_BOOTSTRAP_PASSWORD=$admin_password keystone-manage bootstrap --bootstrap-region-id "$region" \
    --bootstrap-admin-url "$url" --bootstrap-internal-url "$url" --bootstrap-public-url "$url" >&2
  umask 077
  cat > /root/keystonerc_admin <<RC
export OS_USERNAME=admin OS_PASSWORD='$admin_password' OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default
export OS_AUTH_URL=$url OS_IDENTITY_API_VERSION=3
RC
  systemctl restart apache2
  # The other services a non-HA install registers, at this node's address: one client process.
  # shellcheck disable=SC1091
  . /root/keystonerc_admin
  python3 - "$node_ip" "$region" >&2 <<'PY'
import sys, time
import openstack
node_ip, region = sys.argv[1:]
for attempt in range(30):  # Apache's keystone process is starting
    try:
        cloud = openstack.connect()
        cloud.identity.get_token()
        break
    except Exception as error:
        print(f"waiting for keystone: {error}")
        time.sleep(5)
for name, kind, port, path in (("glance", "image", 9292, ""), ("nova", "compute", 8774, "/v2.1"),
                               ("neutron", "network", 9696, "")):
    service = cloud.identity.find_service(name) or cloud.identity.create_service(name=name, type=kind)
    for interface in ("public", "internal", "admin"):
        if not list(cloud.identity.endpoints(service_id=service.id, interface=interface)):
            cloud.identity.create_endpoint(service_id=service.id, interface=interface,
                                           region_id=region, url=f"http://{node_ip}:{port}{path}")
PY
  tar -C /etc/keystone -cz fernet-keys credential-keys | base64 -w0
  ;;
keys)
  base64 -d | tar -C /etc/keystone -xz
  chown -R keystone:keystone /etc/keystone/fernet-keys /etc/keystone/credential-keys
  systemctl restart apache2
  ;;
esac
