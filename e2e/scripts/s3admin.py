"""Small S3 admin helper for the e2e tests, run with LocalStack's venv python (it ships boto3).

    python s3admin.py ENDPOINT create-bucket BUCKET
    python s3admin.py ENDPOINT put-cors BUCKET ORIGIN [ORIGIN...]   # browser PUT from these origins
    python s3admin.py ENDPOINT delete-cors BUCKET
    python s3admin.py ENDPOINT get-object BUCKET KEY OUTFILE        # exit 3 if the key does not exist
    python s3admin.py ENDPOINT list BUCKET                          # one key per line
    python s3admin.py ENDPOINT notify BUCKET PREFIX                 # ObjectCreated under PREFIX to a new queue
                                                                    # (with a DLQ), and an accepted queue; prints
                                                                    # EVENTS_QUEUE_URL, ACCEPTED_QUEUE_URL exports

Credentials are LocalStack's test/test in us-east-1, path-style addressing.
"""

import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def main(argv):
    endpoint, cmd, bucket, *rest = argv
    s3 = client(endpoint)
    if cmd == "create-bucket":
        s3.create_bucket(Bucket=bucket)
    elif cmd == "put-cors":
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": rest,
                        "AllowedMethods": ["PUT"],
                        # Every signed header the browser sends.
                        "AllowedHeaders": [
                            "content-disposition",
                            "content-type",
                            "if-none-match",
                            "x-amz-checksum-sha256",
                        ],
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 0,
                    }
                ]
            },
        )
    elif cmd == "delete-cors":
        s3.delete_bucket_cors(Bucket=bucket)
    elif cmd == "get-object":
        key, out = rest
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as err:
            if err.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return 3
            raise
        with open(out, "wb") as f:
            f.write(body)
    elif cmd == "notify":
        (prefix,) = rest
        sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

        def queue(name, **attrs):
            url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            return url, arn

        _, dlq_arn = queue(f"{bucket}-events-dlq")
        events_url, events_arn = queue(
            f"{bucket}-events",
            RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        )
        accepted_url, _ = queue(f"{bucket}-accepted")
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": events_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                    }
                ]
            },
        )
        print(f"export EVENTS_QUEUE_URL={events_url}")
        print(f"export EVENTS_QUEUE_ARN={events_arn}")
        print(f"export ACCEPTED_QUEUE_URL={accepted_url}")
    elif cmd == "list":
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            print(obj["Key"])
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
