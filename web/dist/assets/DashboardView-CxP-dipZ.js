import{_ as e,o,b as r}from"./index-DShqX2HH.js";const a={};function c(n,s){return o(),r("h1",null,"DashboardView")}const _=e(a,[["render",c]]);export{_ as default};
