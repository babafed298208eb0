/**
 * The ceiling: the least a graphql-yoga 5 server can do for the bench's predict mutation (same
 * request, same response shape, a constant answer: no ONNX, no database, no plugins). The
 * gateway's throughput is reported as a fraction of this one's, measured on the same machine.
 *
 * Run as its own process: `node --import tsx bench/ceiling.ts`. Listens on 127.0.0.1 and an
 * ephemeral port (PORT to choose), prints one JSON line `{"msg":"listening","port":N}`,
 * exits 0 on SIGTERM/SIGINT.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSchema, createYoga } from 'graphql-yoga';

const yoga = createYoga({
  schema: createSchema({
    typeDefs: /* GraphQL */ `
      type Query {
        ok: Boolean
      }
      type Prediction {
        id: ID!
        label: String
      }
      type Mutation {
        predict(input: PredictInput!): Prediction!
      }
      input PredictInput {
        model: String!
        features: [Float!]
      }
    `,
    resolvers: {
      Query: { ok: () => true },
      Mutation: { predict: () => ({ id: '1', label: 'setosa' }) },
    },
  }),
  graphqlEndpoint: '/graphql',
  landingPage: false,
  graphiql: false,
});

// Yoga answers every request itself, errors included; its promise only says when.
const server = createServer((req, res) => void yoga(req, res));
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(JSON.stringify({ msg: 'listening', port }));
});

function stop(): void {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
