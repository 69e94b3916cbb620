import { createRouter, createWebHistory } from 'vue-router';
import { session } from './lib/session';

// Every path here must be one the server answers with index.html (crates/onair-web): none
// under /api, /live or /assets, no dotted last segment, nothing below /replays/{id}/.
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'home', component: () => import('./views/HomeView.vue') },
    { path: '/watch/:slug', name: 'watch', component: () => import('./views/WatchView.vue'), props: true },
    { path: '/replays/:id(\\d+)', name: 'replay', component: () => import('./views/ReplayView.vue'), props: true },
    { path: '/videos', name: 'videos', component: () => import('./views/VideosView.vue') },
    { path: '/videos/:id(\\d+)', name: 'video', component: () => import('./views/VideoView.vue'), props: true },
    { path: '/login', name: 'login', component: () => import('./views/LoginView.vue') },
    { path: '/register', name: 'register', component: () => import('./views/LoginView.vue'), props: { register: true } },
    { path: '/dashboard', name: 'dashboard', component: () => import('./views/DashboardView.vue'), meta: { needs: 'streamer' } },
    { path: '/admin', name: 'admin', component: () => import('./views/AdminView.vue'), meta: { needs: 'admin' } },
    { path: '/:rest(.*)*', name: 'not-found', component: () => import('./views/NotFoundView.vue') },
  ],
  scrollBehavior: () => ({ top: 0 }),
});

router.beforeEach((to) => {
  const needs = to.meta.needs;
  if (!needs) return true;
  if (!session.user) return { name: 'login', query: { next: to.fullPath } };
  if (needs === 'admin' && !session.isAdmin) return { name: 'home' };
  if (needs === 'streamer' && !session.canStream) return { name: 'home' };
  return true;
});

router.afterEach((to) => {
  // Move focus to the page's heading after a client-side navigation, as a full page load
  // would, so screen readers announce the new page.
  requestAnimationFrame(() => {
    const h = document.querySelector<HTMLElement>('main h1');
    if (h && to.name !== undefined) {
      h.tabIndex = -1;
      h.focus({ preventScroll: true });
    }
  });
});
