/*
 * Drive the simulated Triton APIs with the real npm `sdc-clients` (13.x).
 * Run by sim/tests/triton_clients.rs; URLs and inputs come from the
 * environment, results go to stdout as one JSON object.
 *
 *   PAPI_URL VMAPI_URL CNAPI_URL IMGAPI_URL  service URLs
 *   OWNER       owner UUID for the package and VM
 *   IMAGE_FILE  path of an image file to upload; IMAGE_MANIFEST its manifest
 *   BRAND       VM brand (default builder)
 */
'use strict';
var fs = require('fs');
var crypto = require('crypto');
var sdc = require('sdc-clients');

function env(k) {
    var v = process.env[k];
    if (!v) { throw new Error('missing env ' + k); }
    return v;
}

var out = {};
function done(err) {
    if (err) {
        out.error = { message: err.message, name: err.name,
            body: err.body, statusCode: err.statusCode };
    }
    console.log(JSON.stringify(out));
    process.exit(0);
}

var papi = new sdc.PAPI({ url: env('PAPI_URL'), agent: false });
var vmapi = new sdc.VMAPI({ url: env('VMAPI_URL'), agent: false });
var cnapi = new sdc.CNAPI({ url: env('CNAPI_URL'), agent: false });
var imgapi = new sdc.IMGAPI({ url: env('IMGAPI_URL'), agent: false });
var owner = env('OWNER');
var brand = process.env.BRAND || 'builder';

var steps = [
    function pkgAdd(next) {
        papi.add({
            name: 'sdc-clients-builder', version: '1.0.0', active: true,
            cpu_cap: 200, max_lwps: 2000, max_physical_memory: 1024,
            max_swap: 2048, quota: 10240, zfs_io_priority: 100,
            brand: brand, owner_uuids: [owner],
            min_platform: JSON.parse(process.env.MIN_PLATFORM || '{}')
        }, function (err, pkg) {
            out.pkgAdd = pkg;
            next(err);
        });
    },
    function pkgGet(next) {
        papi.get(out.pkgAdd.uuid, {}, function (err, pkg) {
            out.pkgGet = pkg;
            next(err);
        });
    },
    function pkgBadBrand(next) {
        papi.add({
            name: 'bad', version: '1.0.0', active: true, cpu_cap: 200,
            max_lwps: 2000, max_physical_memory: 1024, max_swap: 2048,
            quota: 10240, zfs_io_priority: 100, brand: 'WcDonalds'
        }, function (err) {
            out.pkgBadBrand = err ? { statusCode: err.statusCode,
                body: err.body } : 'accepted';
            next();
        });
    },
    function pkgList(next) {
        papi.list({ owner_uuids: owner }, {}, function (err, pkgs) {
            out.pkgList = (pkgs || []).map(function (p) { return p.uuid; });
            next(err);
        });
    },
    function servers(next) {
        cnapi.listServers(function (err, s) {
            out.servers = (s || []).map(function (x) {
                return { uuid: x.uuid, current_platform: x.current_platform };
            });
            next(err);
        });
    },
    function server(next) {
        cnapi.getServer(out.servers[0].uuid, function (err, s) {
            out.server = s && { uuid: s.uuid, sysinfoUUID: s.sysinfo &&
                s.sysinfo.UUID, setup: s.setup, traits: s.traits };
            next(err);
        });
    },
    function imgImport(next) {
        var m = JSON.parse(fs.readFileSync(env('IMAGE_MANIFEST'), 'utf8'));
        imgapi.adminImportImage(m, {}, function (err, img) {
            out.imgImport = img;
            next(err);
        });
    },
    function imgFile(next) {
        var file = env('IMAGE_FILE');
        var data = fs.readFileSync(file);
        var sha1 = crypto.createHash('sha1').update(data).digest('hex');
        imgapi.addImageFile({ uuid: out.imgImport.uuid, file: file,
            compression: 'gzip', sha1: sha1 }, function (err, img) {
            out.imgFile = img;
            next(err);
        });
    },
    function imgBadSha1(next) {
        imgapi.adminImportImage(Object.assign({}, out.imgImport, {
            uuid: '5b5a8f5e-1f0c-4c2e-9a3a-0d6a3c1f2b4e', channels: undefined,
            state: undefined }), {}, function (err, img) {
            if (err) { return next(err); }
            imgapi.addImageFile({ uuid: img.uuid, file: env('IMAGE_FILE'),
                compression: 'gzip',
                sha1: '0000000000000000000000000000000000000000'
            }, function (err2) {
                out.imgBadSha1 = err2 ? { statusCode: err2.statusCode,
                    body: err2.body, message: err2.message } : 'accepted';
                next();
            });
        });
    },
    function imgActivate(next) {
        imgapi.activateImage(out.imgImport.uuid, function (err, img) {
            out.imgActivate = img;
            next(err);
        });
    },
    function imgGet(next) {
        imgapi.getImage(out.imgImport.uuid, function (err, img) {
            out.imgGet = img;
            next(err);
        });
    },
    function imgList(next) {
        imgapi.listImages({}, function (err, imgs) {
            out.imgList = (imgs || []).map(function (i) { return i.uuid; });
            next(err);
        });
    },
    function vmCreate(next) {
        vmapi.createVm({
            owner_uuid: owner, brand: brand, billing_id: out.pkgAdd.uuid,
            image_uuid: out.imgImport.uuid, networks: [],
            alias: 'sdc-clients-vm'
        }, function (err, job) {
            out.vmCreate = job;
            next(err);
        });
    },
    function jobGet(next) {
        vmapi.getJob(out.vmCreate.job_uuid, function (err, job) {
            out.job = job && { execution: job.execution,
                chain_results: job.chain_results };
            next(err);
        });
    },
    function vmGet(next) {
        vmapi.getVm({ uuid: out.vmCreate.vm_uuid }, function (err, vm) {
            out.vmGet = vm;
            next(err);
        });
    },
    function vmList(next) {
        vmapi.listVms({ owner_uuid: owner, brand: brand }, function (err, vms) {
            out.vmList = (vms || []).map(function (v) { return v.uuid; });
            next(err);
        });
    }
];

function run(i) {
    if (i >= steps.length) { return done(); }
    out.lastStep = steps[i].name;
    steps[i](function (err) {
        if (err) { return done(err); }
        run(i + 1);
    });
}
run(0);
