"""moto's Cognito as the issuer of the Lambda end-to-end test's tokens.

    python e2e/lambda/cognito.py MOTO_ENDPOINT NAME

creates a user pool NAME and an app client that signs in with a password,
signs a probe user in, and prints `export` lines for run.sh:

  COGNITO_POOL_ID    the pool
  COGNITO_CLIENT_ID  the app client: the audience of its tokens
  COGNITO_ISSUER     the `iss` of the probe user's token. moto's issuer is
                     AWS's URL (https://cognito-idp.<region>.amazonaws.com/
                     <pool id>), not moto's address, so it is read from a
                     token rather than assumed.
  COGNITO_JWKS_URL   where moto publishes the pool's keys:
                     MOTO_ENDPOINT/<pool id>/.well-known/jwks.json

check.py signs its users in with `Users` below.
"""

from __future__ import annotations

import base64
import json
import shlex
import sys

import boto3

PASSWORD = "Correct-Horse-9-Battery"
REGION = "us-east-1"


def client(endpoint: str):
    return boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Users:
    """Users of one pool, created on first use; their `sub` and tokens."""

    def __init__(self, endpoint: str, pool_id: str, client_id: str):
        self.idp = client(endpoint)
        self.pool_id = pool_id
        self.client_id = client_id
        self.known: dict[str, dict] = {}

    def get(self, username: str) -> dict:
        """{"sub", "access", "id"} of `username` (AdminCreateUser, a
        permanent password, then InitiateAuth with USER_PASSWORD_AUTH)."""
        if username not in self.known:
            self.idp.admin_create_user(UserPoolId=self.pool_id, Username=username, MessageAction="SUPPRESS")
            self.idp.admin_set_user_password(UserPoolId=self.pool_id, Username=username,
                                             Password=PASSWORD, Permanent=True)
            attributes = self.idp.admin_get_user(UserPoolId=self.pool_id, Username=username)["UserAttributes"]
            tokens = self.idp.initiate_auth(
                ClientId=self.client_id, AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
            )["AuthenticationResult"]
            self.known[username] = {
                "sub": next(a["Value"] for a in attributes if a["Name"] == "sub"),
                "access": tokens["AccessToken"],
                "id": tokens["IdToken"],
            }
        return self.known[username]


def main() -> None:
    endpoint, name = sys.argv[1], sys.argv[2]
    idp = client(endpoint)
    pool_id = idp.create_user_pool(PoolName=name)["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName=f"{name}-app",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    probe = Users(endpoint, pool_id, client_id).get("probe")
    issuer = claims(probe["access"])["iss"]
    for key, value in [
        ("COGNITO_POOL_ID", pool_id),
        ("COGNITO_CLIENT_ID", client_id),
        ("COGNITO_ISSUER", issuer),
        ("COGNITO_JWKS_URL", f"{endpoint}/{pool_id}/.well-known/jwks.json"),
    ]:
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
