import{_ as e,o as c,b as n}from"./index-DShqX2HH.js";const o={};function r(t,a){return c(),n("h1",null,"ReplayView")}const _=e(o,[["render",r]]);export{_ as default};
