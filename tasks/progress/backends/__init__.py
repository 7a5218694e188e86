"""One module per progress store: Redis, DynamoDB, this process's memory."""
