"""IAM authorisation for moto's server the way AWS evaluates it, so policies can be proven.

moto can enforce IAM (``INITIAL_NO_AUTH_ACTION_COUNT`` or POST
``/moto-api/reset-auth``), but too coarsely to prove a least-privilege policy:
DynamoDB and DynamoDB Streams requests are authorised against ``"*"`` (a
statement scoped to a table never matches), SQS ``GetQueueUrl`` and
``CreateQueue`` against ``"*"`` too, four of the S3 calls we make are checked
under their API names instead of their IAM actions (``s3:ListObjectsV2``
instead of ``s3:ListBucket``), and conditions other than ``StringEquals`` on
``sts:ExternalId`` are taken as true. A policy that passed there could fail in
AWS, or pass here only because a condition was ignored.

This package replaces moto's decision for identity policies while keeping its
authentication (access key, signature) and its trust-policy check for
``AssumeRole``:

* each request becomes one or more :class:`~chromasync.motoiam.model.Check`
  (IAM action, resource ARN, condition context) as the Service Authorization
  Reference describes it, for the DynamoDB, DynamoDB Streams, SQS and S3
  operations this project uses (:mod:`~chromasync.motoiam.checks`,
  :mod:`~chromasync.motoiam.dynamodb`, :mod:`~chromasync.motoiam.dynamodb_context`,
  :mod:`~chromasync.motoiam.expressions`);
* statements are matched on ``Action``/``NotAction``, ``Resource``/``NotResource``
  (wildcards per ARN segment, :mod:`~chromasync.motoiam.matching`) and
  ``Condition`` (:mod:`~chromasync.motoiam.conditions`), and an explicit Deny wins
  over any Allow (:func:`~chromasync.motoiam.policy.decide`).

It fails closed: an operation of those services it does not model, a condition
operator or key it does not model, a policy variable or a context value it cannot
determine never grants, and makes a Deny statement apply. Each such case writes one
line to the server's log saying which, so a policy author sees why a request was
denied (:mod:`~chromasync.motoiam.authorise`).

Nothing here runs while enforcement is off:
:func:`~chromasync.motoiam.install.install_on_demand` only watches
``/moto-api/reset-auth`` (and the count moto read from the environment) and
patches moto's authorisation when enforcement can start.
"""
