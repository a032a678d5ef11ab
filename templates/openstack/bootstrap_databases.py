"""The OpenStack databases and their users in the clustered MySQL, through the VIP as MySQL's root.

argv[1]: JSON {"host", "ssl_ca" (or null), "databases": [[name, user], ...]}; fd 3: NAME=value
lines (mysql_root, db_<user>). Check-then-act: a database is created when missing; a user when
missing, its password set only when it cannot log in with it; grants are idempotent. Prints what
it created or fixed ("nothing" on a re-run).
"""
import json
import os
import sys
import time

import pymysql

plan = json.loads(sys.argv[1])
with os.fdopen(3) as stream:
    secrets = dict(line.split("=", 1) for line in stream.read().splitlines() if "=" in line)
ssl = {"ca": plan["ssl_ca"]} if plan["ssl_ca"] else None


def connect(user, password):
    return pymysql.connect(host=plan["host"], user=user, password=password, ssl=ssl,
                           connect_timeout=10)


def root():
    """MySQL answers at the VIP once the cluster has started it: wait, bounded."""
    deadline = time.monotonic() + 600
    while True:
        try:
            return connect("root", secrets["mysql_root"])
        except pymysql.err.OperationalError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"MySQL at {plan['host']} refuses root: {error}")
            time.sleep(5)


def can_log_in(user, password):
    try:
        connect(user, password).close()
        return True
    except pymysql.err.OperationalError:
        return False


done = []
connection = root()
with connection.cursor() as cursor:
    cursor.execute("SHOW DATABASES")
    existing = {row[0] for row in cursor.fetchall()}
    cursor.execute("SELECT User FROM mysql.user WHERE Host = '%'")
    users = {row[0] for row in cursor.fetchall()}
    for name, user in plan["databases"]:
        password = secrets[f"db_{user}"]
        if name not in existing:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            done.append(f"database {name}")
        if user not in users:
            cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            users.add(user)
            done.append(f"user {user}")
        elif not can_log_in(user, password):
            cursor.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
            done.append(f"password {user}")
        cursor.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (user,))
connection.commit()
print("databases: created", ", ".join(done) if done else "nothing")
