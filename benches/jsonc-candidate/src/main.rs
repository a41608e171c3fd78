//! The golden tests of src/runbook/appsettings/rules.rs, edited with jsonc-parser's CST; prints
//! SAME or DIFFERENT per case. The inputs agent_in.json / agent_want.json are copied from there.

use jsonc_parser::cst::{CstInputValue, CstRootNode};
use jsonc_parser::cst::{CstObject, CstObjectProp};
use jsonc_parser::ParseOptions;
fn rename(p: CstObjectProp, n: &str) {
    p.name()
        .unwrap()
        .as_string_lit()
        .unwrap()
        .set_raw_value(format!("\"{n}\""));
}
fn objv(p: &CstObjectProp) -> CstObject {
    p.value().unwrap().as_object().unwrap()
}

fn check(name: &str, got: String, want: &str) {
    if got == want {
        println!("{name}: SAME bytes");
    } else {
        println!("{name}: DIFFERENT\n--- want\n{want}\n--- got\n{got}\n---");
    }
}

fn main() {
    let opts = ParseOptions::default();
    // 1. agent golden: key renames only
    let agent_in = include_str!("agent_in.json");
    let agent_want = include_str!("agent_want.json");
    let root = CstRootNode::parse(agent_in, &opts).unwrap();
    let obj = root.object_value().unwrap();
    let is = obj.get("InformationSystems").unwrap();
    let iso = objv(&is);
    rename(is, "Connections");
    rename(iso.get("AD_Paris").unwrap(), "ADParis");
    rename(iso.get("Web_Api").unwrap(), "WebApi");
    let opt = objv(&objv(&iso.get("ADParis").unwrap()).get("Options").unwrap());
    rename(opt.get("PageResult").unwrap(), "PagedResult");
    let nested = opt.array_value("Nested").unwrap();
    rename(
        nested.elements()[0]
            .as_object()
            .unwrap()
            .get("PageResult")
            .unwrap(),
        "PagedResult",
    );
    rename(
        objv(&obj.get("Other").unwrap()).get("PageResult").unwrap(),
        "PagedResult",
    );
    check("agent renames", root.to_string(), agent_want);

    // 2. server inserts into an object with a trailing line comment
    let server_in = "{\n    \"ConnectionString\": \"data source=.;Database=Usercube;\", // db\n    \"EncryptionCertificate\": {\n        \"File\": \"cert.pfx\",\n        \"Password\": \"secret\"\n    }\n}\n";
    let want = "{\n    \"ConnectionString\": \"data source=.;Database=Usercube;\", // db\n    \"EncryptionCertificate\": {\n        \"File\": \"cert.pfx\",\n        \"Password\": \"secret\",\n        \"EncryptFile\": false\n    },\n    \"TempFolderPath\": \"../Temp\",\n    \"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\"\n}\n";
    let root = CstRootNode::parse(server_in, &opts).unwrap();
    let obj = root.object_value().unwrap();
    objv(&obj.get("EncryptionCertificate").unwrap())
        .append("EncryptFile", CstInputValue::Bool(false));
    obj.append("TempFolderPath", CstInputValue::String("../Temp".into()));
    obj.append(
        "WorkFolderPath",
        CstInputValue::String("D:\\Usercube\\Work".into()),
    );
    check("server inserts", root.to_string(), want);

    // 3. empty object
    let root = CstRootNode::parse("{}", &opts).unwrap();
    let obj = root.object_value().unwrap();
    obj.append("TempFolderPath", CstInputValue::String("../Temp".into()));
    obj.append(
        "WorkFolderPath",
        CstInputValue::String("D:\\Usercube\\Work".into()),
    );
    obj.append(
        "EncryptionCertificate",
        CstInputValue::Object(vec![("EncryptFile".into(), CstInputValue::Bool(true))]),
    );
    check("empty object", root.to_string(), "{\n  \"TempFolderPath\": \"../Temp\",\n  \"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\",\n  \"EncryptionCertificate\": {\n    \"EncryptFile\": true\n  }\n}");

    // 4. BOM + CRLF + tabs + line comment after last member
    let text = "{\r\n\t\"License\": \"x\" // lic\r\n}\r\n";
    match CstRootNode::parse(text, &opts) {
        Err(e) => println!("BOM+CRLF: parse error: {e}"),
        Ok(root) => {
            let obj = root.object_value().unwrap();
            obj.append("TempFolderPath", CstInputValue::String("../Temp".into()));
            obj.append(
                "WorkFolderPath",
                CstInputValue::String("D:\\Usercube\\Work".into()),
            );
            obj.append(
                "EncryptionCertificate",
                CstInputValue::Object(vec![("EncryptFile".into(), CstInputValue::Bool(true))]),
            );
            check("CRLF+tabs (BOM stripped before, re-added after)", format!("\u{FEFF}{}", root.to_string()), "\u{FEFF}{\r\n\t\"License\": \"x\", // lic\r\n\t\"TempFolderPath\": \"../Temp\",\r\n\t\"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\",\r\n\t\"EncryptionCertificate\": {\r\n\t\t\"EncryptFile\": true\r\n\t}\r\n}\r\n");
        }
    }
    // 5. replace a value keeping the comment after it
    let text = "{\n  \"TempFolderPath\": \"C:/old\", /* t */\n  \"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\",\n  \"EncryptionCertificate\": { \"EncryptFile\": \"True\" },\n}";
    let root = CstRootNode::parse(text, &opts).unwrap();
    root.object_value()
        .unwrap()
        .get("TempFolderPath")
        .unwrap()
        .set_value(CstInputValue::String("../Temp".into()));
    check("replace value", root.to_string(), "{\n  \"TempFolderPath\": \"../Temp\", /* t */\n  \"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\",\n  \"EncryptionCertificate\": { \"EncryptFile\": \"True\" },\n}");
    // 6. round trip of an untouched doc with odd whitespace and comments
    for t in [
        "{ /*a*/ \"k\" /*b*/ : /*c*/ [1 , 2 ,] , } // end\r\n",
        "{\n\t\"a\": 1e5,\n\t\"b\": \"\\u00e9\\n\"\n}",
    ] {
        match CstRootNode::parse(t, &opts) {
            Ok(r) => println!("roundtrip {:?}: {}", t, r.to_string() == t),
            Err(e) => println!("roundtrip {t:?}: parse error {e}"),
        }
    }
}
