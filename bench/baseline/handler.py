"""The original design, as a Python Lambda handler (API Gateway REST event).

For every request: one DynamoDB `Query` counting the caller's uploads newer
than now minus 3 h (`Select=COUNT`, key condition on the sort key), then,
under the limit, one `PutItem` recording this one with a TTL. It answers 429
once the count reaches the limit. Table `UploadTracker`: partition key
`userId` (S), sort key `timestamp` (S, ISO 8601 UTC with microseconds, so
strings sort as times), TTL attribute `expireAt` (N, epoch seconds).

Written as its author would deploy it: the client is built once, at import
(the Lambda init phase); the Query is eventually consistent (the default)
and follows pagination; `userId` comes from the JSON body, as it did.
"""

import datetime
import json
import os

import boto3

TABLE = os.environ.get("TABLE_NAME", "UploadTracker")
LIMIT = int(os.environ.get("UPLOAD_LIMIT", "5"))
WINDOW = datetime.timedelta(hours=float(os.environ.get("WINDOW_HOURS", "3")))

dynamodb = boto3.client("dynamodb")


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def answer(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(body)}


def count_recent(user, since):
    count, kwargs = 0, {}
    while True:
        page = dynamodb.query(
            TableName=TABLE, Select="COUNT",
            KeyConditionExpression="userId = :u AND #ts > :since",
            ExpressionAttributeNames={"#ts": "timestamp"},
            ExpressionAttributeValues={":u": {"S": user}, ":since": {"S": since}},
            **kwargs)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def handler(event, context):
    try:
        user = json.loads(event.get("body") or "{}").get("userId")
    except (ValueError, AttributeError):
        user = None
    if not isinstance(user, str) or not user:
        return answer(400, {"error": "userId required"})
    now = datetime.datetime.now(datetime.timezone.utc)
    used = count_recent(user, iso(now - WINDOW))
    if used >= LIMIT:
        return answer(429, {"allowed": False, "limit": LIMIT, "used": used})
    dynamodb.put_item(TableName=TABLE, Item={
        "userId": {"S": user},
        "timestamp": {"S": iso(now)},
        "expireAt": {"N": str(int((now + WINDOW).timestamp()))},
    })
    return answer(200, {"allowed": True, "remaining": LIMIT - used - 1})
