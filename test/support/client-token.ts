// Test agents are started with TEST_TOKEN (agents never serve unauthenticated); clients that are given no
// token (the SDK, the CLI, RawClient) find it where users put theirs: KINDLING_TOKEN.
import { TEST_TOKEN } from '@kindling/agent/testing';

process.env.KINDLING_TOKEN ??= TEST_TOKEN;
