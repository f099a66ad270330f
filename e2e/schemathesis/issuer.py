"""The issuer of the Schemathesis run: an EC P-256 key pair and ES256 tokens.

    python issuer.py keys DIR
        writes DIR/private.pem (0600) and DIR/public.pem (the file for
        UPLOADGATE_JWT_PUBLIC_KEY)
    python issuer.py mint DIR --issuer ISS --audience AUD --subject SUB
                    --ttl SECONDS [--claim NAME=VALUE ...]
        prints a token signed with DIR/private.pem: iss, aud, sub, iat,
        nbf, exp = now + SECONDS, and the extra string claims

The gate verifies these exactly as it verifies an issuer's: signature and
algorithm against the public key, iss, aud, exp/nbf, and sub as the user.
"""

import argparse
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def keys(directory: str) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = os.path.join(directory, "private.pem")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    with open(os.path.join(directory, "public.pem"), "wb") as f:
        f.write(public)


def mint(args: argparse.Namespace) -> str:
    with open(os.path.join(args.dir, "private.pem"), "rb") as f:
        private = f.read()
    now = int(time.time())
    claims = {
        "iss": args.issuer,
        "aud": args.audience,
        "sub": args.subject,
        "iat": now,
        "nbf": now,
        "exp": now + args.ttl,
    }
    for item in args.claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            sys.exit(f"issuer.py: --claim takes NAME=VALUE, got {item!r}")
        claims[name] = value
    return jwt.encode(claims, private, algorithm="ES256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keys")
    k.add_argument("dir")
    m = sub.add_parser("mint")
    m.add_argument("dir")
    m.add_argument("--issuer", required=True)
    m.add_argument("--audience", required=True)
    m.add_argument("--subject", required=True)
    m.add_argument("--ttl", type=int, required=True, help="seconds until exp")
    m.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    if args.command == "keys":
        keys(args.dir)
    else:
        print(mint(args))


if __name__ == "__main__":
    main()
