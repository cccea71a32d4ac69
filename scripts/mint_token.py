"""Print an HS256 JWT for a user, signed with the development secret."""
import argparse
import os
import time

import jwt
from dev_secret import load_or_create_secret


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uid", required=True, help="user id, becomes the sub claim")
    parser.add_argument("--roles", default="", help="comma-separated roles, e.g. admin")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    args = parser.parse_args(argv)
    if not args.uid.strip():
        parser.error("--uid must not be empty")
    if args.ttl <= 0:
        parser.error("--ttl must be a positive number of seconds")
    return args


def build_claims(uid, roles, ttl, now=None):
    """Return the claims for uid, with aud and iss taken from the environment."""
    now = int(time.time()) if now is None else now
    claims = {"sub": uid, "iat": now, "exp": now + ttl}
    role_list = [role.strip() for role in roles.split(",") if role.strip()]
    if role_list:
        claims["roles"] = role_list
    if os.environ.get("JWT_AUDIENCE"):
        claims["aud"] = os.environ["JWT_AUDIENCE"]
    if os.environ.get("JWT_ISSUER"):
        claims["iss"] = os.environ["JWT_ISSUER"]
    return claims


def main(argv=None):
    """Print one signed token and nothing else, so $(make -s token ...) works."""
    args = parse_args(argv)
    secret = os.environ.get("JWT_SECRET") or load_or_create_secret()
    claims = build_claims(args.uid, args.roles, args.ttl)
    print(jwt.encode(claims, secret, algorithm="HS256"))


if __name__ == "__main__":
    main()
