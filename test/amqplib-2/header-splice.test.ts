// instrumentations/amqplib/test/header-splice.test.ts, against the amqplib 2.x
// installed here.
process.env["THREADLINE_TEST_AMQPLIB"] = import.meta.dirname;
await import("../../instrumentations/amqplib/test/header-splice.test.ts");
