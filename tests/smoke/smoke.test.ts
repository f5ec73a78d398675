import { expect, it } from 'vitest';
import { eachStore, newTenant } from '../harness/each-store.js';

eachStore('smoke', (server) => {
  it('creates and reads a tenant', async () => {
    const t = await newTenant(server());
    const res = await server().http.get(`/v1/tenants/${t.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(t);
  });
});
