import { builder } from './builder.ts';
import './tensor.ts';
import './model.ts';
import './prediction.ts';
import './generation.ts';
import './batch-job.ts';
import './model-events.ts';
import './feedback.ts';
import './drift.ts';
import './traffic.ts';
import './shadow.ts';

export const schema = builder.toSchema({ sortSchema: false });
