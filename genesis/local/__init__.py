"""Local provisioning for `genesis dev` and the tests: an embedded PostgreSQL, the Tansu broker, Apache Kafka from
Maven Central's jars. Production never imports it; it imports nothing outside the core."""
