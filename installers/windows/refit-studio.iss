; Inno Setup 6 script for Refit Studio on Windows.
; UNTESTED: no Windows machine has compiled or run this yet (docs/installer.md, "Windows").
;
; Build the onedir bundle first (dist\refit-studio\ with refit-studio.exe and refit.exe), then:
;   iscc /DAppVersion=0.1.0 /DEdition=cpu installers\windows\refit-studio.iss
; Output: dist\refit-studio-0.1.0-windows-x86_64-cpu-setup.exe
;
; Per-user install (no administrator rights): %LOCALAPPDATA%\Programs\Refit Studio.
; Start menu shortcut, optional desktop shortcut, optional "add refit to PATH" (user PATH).

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef Edition
  #define Edition "cpu"
#endif
#define Root "..\.."

[Setup]
AppId={{15059BEF-5C20-4749-B969-F6C0FF97F252}
AppName=Refit Studio
AppVersion={#AppVersion}
AppVerName=Refit Studio {#AppVersion} ({#Edition} edition)
AppPublisher=Refit Studio
DefaultDirName={userpf}\Refit Studio
DefaultGroupName=Refit Studio
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#Root}\dist
OutputBaseFilename=refit-studio-{#AppVersion}-windows-x86_64-{#Edition}-setup
SetupIconFile={#Root}\resources\icons\refit-studio.ico
UninstallDisplayIcon={app}\refit-studio.exe
Compression=lzma2/max
SolidCompression=yes
; The NVIDIA edition is several GB: if iscc refuses a single setup file that large, set
; DiskSpanning=yes (it then writes setup-*.bin files next to the .exe).
DiskSpanning=no
ChangesEnvironment=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked
Name: "addtopath"; Description: "Add the install folder to PATH (for the refit command)"; Flags: unchecked

[Files]
Source: "{#Root}\dist\refit-studio\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Refit Studio"; Filename: "{app}\refit-studio.exe"; WorkingDir: "{userdocs}"
Name: "{autodesktop}\Refit Studio"; Filename: "{app}\refit-studio.exe"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Registry]
; User PATH; the [Code] check keeps a second install from adding the folder twice.
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; \
    ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\refit-studio.exe"; Description: "Start Refit Studio"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Files the app writes next to itself (none expected; runs live in the user's data folder).
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
function NeedsAddPath(Folder: string): Boolean;
var
  Current: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Current) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Folder) + ';', ';' + Uppercase(Current) + ';') = 0;
end;

procedure RemoveFromPath(Folder: string);
var
  Current: string;
  Position: Integer;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Current) then
    exit;
  { Found at Position in ';' + Current + ';' means the folder starts at Current[Position]. }
  Position := Pos(';' + Uppercase(Folder) + ';', ';' + Uppercase(Current) + ';');
  if Position = 0 then
    exit;
  if Position > 1 then
    Delete(Current, Position - 1, Length(Folder) + 1)
  else
  begin
    Delete(Current, 1, Length(Folder));
    if (Length(Current) > 0) and (Current[1] = ';') then
      Delete(Current, 1, 1);
  end;
  RegWriteExpandStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Current);
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RemoveFromPath(ExpandConstant('{app}'));
end;
