"""One-shot job of the compose stack: create MLflow's artifact bucket on the S3-compatible store.

Reads ``MLFLOW_S3_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
``MLFLOW_BUCKET`` from the environment (docker/.env). Safe to re-run: an existing bucket is kept.
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    """Create the bucket, retrying while the store starts; 0 on success."""
    import boto3
    from botocore.exceptions import ClientError, EndpointConnectionError

    bucket = os.environ["MLFLOW_BUCKET"]
    s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
    for attempt in range(30):
        try:
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
            print(f"bucket {bucket}: ready")
            return 0
        except (ClientError, EndpointConnectionError) as exc:  # the store may still be starting
            print(f"attempt {attempt + 1}: {exc}", file=sys.stderr)
            time.sleep(2)
    return 1


if __name__ == "__main__":
    sys.exit(main())
