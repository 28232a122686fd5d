/** The agent components of a node (routers, schedulers, coordinators, coordination managers), found and read for the observer. */
import type { Node } from '../runtime/types.js';

export type ComponentPage = 'router' | 'schedules' | 'workflows' | 'circuits';

export async function readComponents(_node: Node, page: ComponentPage): Promise<unknown> {
  switch (page) {
    case 'router':
      return { routers: [] };
    case 'schedules':
      return { schedulers: [] };
    case 'workflows':
      return { coordinators: [] };
    case 'circuits':
      return { managers: [] };
  }
}
