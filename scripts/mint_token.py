"""Print an HS256 JWT for a user, signed with the development secret; mint() signs the tests' and the bench's too."""
import argparse
import os
import time

import jwt

DEFAULT_TTL = 3600  # seconds


def mint(sub, key, *, roles=None, ttl=DEFAULT_TTL, algorithm="HS256", headers=None, **claims):
    """Return a token for sub (no sub claim when None) living ttl seconds from now, with roles when given (a list)
    and any other claims, signed with key."""
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + ttl, **claims}
    if roles is not None:
        payload["roles"] = roles
    if sub is None:
        payload.pop("sub")
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def expected_claims():
    """Return the aud and iss claims the service checks, taken from JWT_AUDIENCE and JWT_ISSUER where set."""
    variables = {"aud": "JWT_AUDIENCE", "iss": "JWT_ISSUER"}
    return {claim: os.environ[name] for claim, name in variables.items() if os.environ.get(name)}


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uid", required=True, help="user id, becomes the sub claim")
    parser.add_argument("--roles", default="", help="comma-separated roles, e.g. admin")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="lifetime in seconds")
    args = parser.parse_args(argv)
    if not args.uid.strip():
        parser.error("--uid must not be empty")
    if args.ttl <= 0:
        parser.error("--ttl must be a positive number of seconds")
    return args


def main(argv=None):
    """Print one signed token and nothing else, so $(make -s token ...) works."""
    # Here, not at the top: the tests and the bench import mint() as scripts.mint_token, with scripts/ not on their
    # path (so no `dev_secret` to import), and sign with secrets of their own.
    from dev_secret import load_or_create_secret

    args = parse_args(argv)
    secret = os.environ.get("JWT_SECRET") or load_or_create_secret()
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    print(mint(args.uid, secret, roles=roles or None, ttl=args.ttl, **expected_claims()))


if __name__ == "__main__":
    main()
