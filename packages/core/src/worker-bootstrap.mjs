// Worker threads do not inherit the tsx loader: register it here, then load
// the TypeScript module named in argv (see typeScriptWorker).
import { register } from 'tsx/esm/api';

register();
await import(process.argv[2]);
